"""The TFDS `gqn` dataset returns the released records unchanged."""

import io
import os
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import _data_builder
import _data_records
from gqn_jax import released_format

REPO = pathlib.Path(__file__).resolve().parents[1]
RAW = tfds.decode.DeserializeMethod.RAW_BYTES


def _stored(builder, split):
  """{scene name: (JPEG bytes, cameras)} of every stored example of one split, from raw bytes."""
  from tensorflow_datasets.proto import tf_example_pb2  # pylint: disable=g-import-not-at-top
  stored = {}
  for raw in builder.as_data_source(split, deserialize_method=RAW):
    feature = tf_example_pb2.Example.FromString(raw).features.feature
    name = feature["scene"].bytes_list.value[0].decode()
    assert name not in stored, f"scene {name} stored twice"
    stored[name] = (list(feature["frames"].bytes_list.value),
                    np.asarray(feature["cameras"].float_list.value, np.float32).reshape(-1, 5))
  return stored


def _expected(written, split, per_shard):
  """{scene name: (JPEG bytes, cameras)} as the hand-written files hold them."""
  scenes = written[split]
  shards = -(-len(scenes) // per_shard)
  return {f"{split}/{released_format.shard_name(i // per_shard + 1, shards)}#{i % per_shard}":
          scene for i, scene in enumerate(scenes)}


def test_released_records_come_back_unchanged(tmp_path_factory):
  _, builder, written = _data_builder.prepared(tmp_path_factory)
  for split in ("train", "test"):
    stored, expected = _stored(builder, split), _expected(written, split, per_shard=10)
    assert builder.info.splits[split].num_examples == len(written[split])
    assert sorted(stored) == sorted(expected)
    for name, (jpegs, cameras) in expected.items():
      assert stored[name][0] == jpegs, f"{name}: JPEG bytes changed"
      np.testing.assert_array_equal(stored[name][1], cameras, err_msg=name)


def test_decoded_frames_are_the_jpeg_pixels(tmp_path_factory):
  """TFDS's own decoding gives the pixels of the original JPEGs, and the raw cameras."""
  _, builder, written = _data_builder.prepared(tmp_path_factory)
  expected = _expected(written, "test", per_shard=10)
  for example in builder.as_data_source("test"):
    jpegs, cameras = expected[example["scene"].decode()]
    np.testing.assert_array_equal(example["cameras"], cameras)
    for frame, jpeg in zip(example["frames"], jpegs, strict=True):
      np.testing.assert_array_equal(frame, np.asarray(Image.open(io.BytesIO(jpeg))))


def test_features_describe_released_layout(tmp_path_factory):
  _, builder, _ = _data_builder.prepared(tmp_path_factory)
  info = released_format.DATASETS["rooms_ring_camera"]
  frames = builder.info.features["frames"]
  assert frames.shape == (info.frames_per_scene, info.frame_size, info.frame_size, 3)
  assert frames.feature.encoding_format == "jpeg"
  assert builder.info.features["cameras"].shape == (info.frames_per_scene, 5)


def test_every_released_dataset_has_a_config():
  names = {config.name for config in _data_builder.builder_class().BUILDER_CONFIGS}
  assert set(released_format.DATASETS) <= names
  module = _data_builder.builder_module()
  assert {module.GENERATED_PREFIX + n for n in module.GENERATED_NAMES} <= names


@pytest.mark.parametrize("make_dir", [False, True])
def test_missing_data_names_the_gsutil_command(tmp_path, make_dir):
  manual = tmp_path / "manual"
  if make_dir:
    (manual / "jaco" / "train").mkdir(parents=True)  # the right name, but no shards.
  with pytest.raises(FileNotFoundError) as error:
    _data_builder.build("jaco", manual, tmp_path / "tfds")
  assert released_format.GSUTIL_COMMAND.format(name="jaco", manual_dir=manual) in str(error.value)


def _fake_generate(calls):
  """A stand-in for gqn_jax.generate that writes hand-made scenes and records its calls."""
  def write_dataset(name, root, *, train_scenes, test_scenes, image_size=64, **kwargs):
    calls.append((name, pathlib.Path(root), train_scenes, test_scenes, image_size, kwargs))
    _data_records.write_dataset(root, name, {"train": train_scenes, "test": test_scenes}, 4,
                                size=image_size)
    return pathlib.Path(root) / name
  return types.SimpleNamespace(write_dataset=write_dataset)


def test_generated_config_generates_when_nothing_is_there(tmp_path, monkeypatch):
  import gqn_jax  # pylint: disable=g-import-not-at-top
  calls = []
  fake = _fake_generate(calls)
  monkeypatch.setattr(gqn_jax, "generate", fake, raising=False)
  monkeypatch.setitem(sys.modules, "gqn_jax.generate", fake)
  monkeypatch.setenv("GQN_GENERATED_DIR", str(tmp_path / "generated"))
  config = _data_builder.builder_module().GqnConfig(
      name="generated_shepard_metzler_5_parts-small", generate_train_scenes=6,
      generate_test_scenes=3)
  builder = _data_builder.build(config, tmp_path / "no_manual", tmp_path / "tfds")
  assert [call[:5] for call in calls] == [
      ("shepard_metzler_5_parts", tmp_path / "generated", 6, 3, 64)]
  assert builder.info.splits["train"].num_examples == 6
  assert builder.info.splits["test"].num_examples == 3
  # A second build of another version dir reads what is there and generates nothing.
  _data_builder.build(config, tmp_path / "no_manual", tmp_path / "tfds2")
  assert len(calls) == 1


def test_generated_config_prefers_manual_dir(tmp_path, monkeypatch):
  monkeypatch.setenv("GQN_GENERATED_DIR", str(tmp_path / "empty"))
  _data_records.write_dataset(tmp_path / "manual", "rooms_ring_camera", {"train": 5, "test": 2}, 3)
  builder = _data_builder.build("generated_rooms_ring_camera", tmp_path / "manual",
                                tmp_path / "tfds")
  assert builder.info.splits["train"].num_examples == 5
  assert not (tmp_path / "empty").exists()


def test_real_generator_output_builds(tmp_path, monkeypatch):
  """gqn_jax.generate's files go through the conversion (skipped until it exists)."""
  generate = pytest.importorskip("gqn_jax.generate")
  monkeypatch.setenv("GQN_GENERATED_DIR", str(tmp_path / "generated"))
  generate.write_dataset("rooms_ring_camera", tmp_path / "generated", train_scenes=4,
                         test_scenes=2, scenes_per_shard=3, workers=1, progress=False)
  builder = _data_builder.build("generated_rooms_ring_camera", tmp_path / "none",
                                tmp_path / "tfds")
  assert builder.info.splits["train"].num_examples == 4
  assert builder.info.splits["test"].num_examples == 2


def test_multiprocessing_direct_runner_gives_the_same_dataset(tmp_path):
  """The documented local Beam command (2 worker processes) stores the scenes unchanged."""
  written = _data_records.write_dataset(tmp_path / "manual", "rooms_ring_camera",
                                        {"train": 12, "test": 3}, 5, seed=7)
  builder = _data_builder.build(
      "rooms_ring_camera", tmp_path / "manual", tmp_path / "tfds",
      beam_options="direct_running_mode=multi_processing,direct_num_workers=2")
  for split in ("train", "test"):
    stored, expected = _stored(builder, split), _expected(written, split, per_shard=5)
    assert sorted(stored) == sorted(expected)
    for name, (jpegs, cameras) in expected.items():
      assert stored[name][0] == jpegs, name
      np.testing.assert_array_equal(stored[name][1], cameras, err_msg=name)


@pytest.mark.slow
def test_tfds_cli_builds_the_dataset(tmp_path):
  """`tfds build data/gqn --config=... --file_format=array_record` with the venv's CLI."""
  _data_records.write_dataset(tmp_path / "manual", "rooms_ring_camera", {"train": 3, "test": 2}, 2)
  tfds_cli = pathlib.Path(sys.executable).parent / "tfds"
  result = subprocess.run(
      [str(tfds_cli), "build", "data/gqn", "--config=rooms_ring_camera",
       f"--manual_dir={tmp_path / 'manual'}", f"--data_dir={tmp_path / 'tfds'}",
       "--file_format=array_record"],
      cwd=REPO, capture_output=True, text=True, timeout=300,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
  assert result.returncode == 0, result.stderr[-3000:]
  builder = tfds.builder_from_directory(tmp_path / "tfds" / "gqn" / "rooms_ring_camera" / "1.0.0")
  assert builder.info.splits["train"].num_examples == 3
  assert len(builder.as_data_source("test")) == 2


@pytest.mark.parametrize("name", [pytest.param("mazes", marks=pytest.mark.slow), "jaco"])
def test_generated_mazes_and_jaco_build_and_feed_the_input_pipeline(name, tmp_path):
  """The generator's mazes (84 px, 300 frames) and jaco scenes go through TFDS into batches."""
  generate = pytest.importorskip("gqn_jax.generate")
  from gqn_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  info = released_format.DATASETS[name]
  written = generate.write_dataset(name, tmp_path / "generated", train_scenes=3, test_scenes=1,
                                   scenes_per_shard=2, workers=2, progress=False)
  builder = _data_builder.build(f"generated_{name}", tmp_path / "generated", tmp_path / "tfds")
  assert builder.info.splits["train"].num_examples == 3
  assert builder.info.features["frames"].shape == (info.frames_per_scene, info.frame_size,
                                                   info.frame_size, 3)
  stored = _stored(builder, "train")
  first = stored["train/1-of-2.tfrecord#0"]
  jpegs, cameras = released_format.decode_scene(
      _first_record(written / "train" / "1-of-2.tfrecord"), info.frames_per_scene)
  assert first[0] == jpegs
  np.testing.assert_array_equal(first[1], cameras)
  dataset = input_pipeline.create_dataset(
      f"generated_{name}", "train", data_dir=tmp_path / "tfds", global_batch_size=2,
      image_size=32, shuffle=False, process_index=0, process_count=1, read_threads=1,
      prefetch_batches=1)
  batch = next(iter(dataset))
  assert batch["context_images"].shape == (2, info.max_context_views, 32, 32, 3)
  assert batch["query_image"].shape == (2, 32, 32, 3)
  assert batch["context_mask"][:, 0].all()
  assert np.ptp(batch["query_image"]) > 0.1, "blank frames"


def _first_record(path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return next(iter(tf.data.TFRecordDataset(str(path)))).numpy()
