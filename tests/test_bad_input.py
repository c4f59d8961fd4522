"""Bad input stops with an error naming the file and record, or is skipped and counted on request.

Never a silent wrong batch: every case below must raise, or (skip_bad_records) leave exactly the
bad records out.
"""

import logging

import numpy as np
import pytest

import _data_builder
import _data_records
from gqn_jax import input_pipeline
from gqn_jax import released_format
from gqn_jax.data import scene_records
from gqn_jax.released_format import RecordError

ROOMS = released_format.DATASETS["rooms_ring_camera"]
SPEC = scene_records.SceneSpec(ROOMS.frames_per_scene, ROOMS.frame_size)


def _example(frames, cameras) -> bytes:
  """A tf.train.Example with any frames and camera values (encode_scene would refuse them)."""
  from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top
  example = example_pb2.Example()
  example.features.feature["frames"].bytes_list.value.extend(frames)
  example.features.feature["cameras"].float_list.value.extend(np.ravel(cameras).tolist())
  return example.SerializeToString()


def _good(seed):
  return _data_records.random_scene(np.random.default_rng(seed), 10, 64)


def _bad_scenes():
  """name -> (a bad serialized scene, text the error must contain)."""
  frames, cameras = _good(100)
  garbage = list(frames)
  garbage[3] = b"\xff\xd8 this is not a JPEG"
  truncated = list(frames)
  truncated[7] = frames[7][:len(frames[7]) // 2]
  png = list(frames)
  png[1] = _png()
  small = list(frames)
  small[4] = _data_records.jpeg(np.zeros((32, 32, 3), np.uint8))
  gray = list(frames)
  gray[2] = _data_records.jpeg(np.zeros((64, 64), np.uint8))
  nan = cameras.copy()
  nan[6, 3] = np.nan
  return {
      "garbage_jpeg": (_example(garbage, cameras), "frame 3: not a decodable JPEG"),
      "truncated_jpeg": (_example(truncated, cameras), "frame 7: not a decodable JPEG"),
      "png_frame": (_example(png, cameras), "frame 1: a PNG image, expected JPEG"),
      "wrong_size": (_example(small, cameras), "frame 4: 32x32 px, expected 64x64"),
      "grayscale": (_example(gray, cameras), "frame 2: L image, expected RGB"),
      "nine_frames": (_example(frames[:9], cameras[:9]), "9 frames, expected 10"),
      "camera_count": (_example(frames, cameras.ravel()[:-1]), "49 camera values"),
      "non_finite_camera": (_example(frames, nan), "non-finite camera values in frame(s) [6]"),
      "not_an_example": (b"\x0a\xff\xff\xff", "not a tf.train.Example"),
  }


def _png():
  import io  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(buffer, format="PNG")
  return buffer.getvalue()


def _shard_with(tmp_path, bad: bytes, position=2, total=4):
  records = [released_format.encode_scene(*_good(i)) for i in range(total)]
  records[position] = bad
  return _data_records.write_records(tmp_path / "001-of-001.tfrecord", records)


@pytest.mark.parametrize("case", sorted(_bad_scenes()))
def test_bad_scene_names_file_record_and_problem(tmp_path, case):
  bad, message = _bad_scenes()[case]
  path = _shard_with(tmp_path, bad)
  with pytest.raises(RecordError) as error:
    list(scene_records.scene_examples(path, SPEC, "train"))
  assert f"{path}, record 2" in str(error.value)
  assert message in str(error.value)


@pytest.mark.parametrize("case", sorted(_bad_scenes()))
def test_skip_bad_records_leaves_out_exactly_the_bad_one(tmp_path, case):
  path = _shard_with(tmp_path, _bad_scenes()[case][0])
  kept = [key for key, _ in scene_records.scene_examples(path, SPEC, "train",
                                                         skip_bad_records=True)]
  assert kept == [f"train/001-of-001.tfrecord#{i}" for i in (0, 1, 3)]


def _truncated_shard(tmp_path, records=5, cut_in=3):
  """A shard whose file ends in the middle of record `cut_in`."""
  scenes = [released_format.encode_scene(*_good(i)) for i in range(records)]
  path = _data_records.write_records(tmp_path / "001-of-001.tfrecord", scenes)
  # TFRecord framing: 8-byte length, 4-byte CRC, data, 4-byte CRC per record.
  offset = sum(16 + len(s) for s in scenes[:cut_in]) + 12 + len(scenes[cut_in]) // 2
  path.write_bytes(path.read_bytes()[:offset])
  return path


def test_truncated_tfrecord_names_file_and_record(tmp_path):
  path = _truncated_shard(tmp_path)
  with pytest.raises(RecordError, match="record 3: truncated or corrupt TFRecord") as error:
    list(scene_records.scene_examples(path, SPEC, "train"))
  assert str(path) in str(error.value)


def test_corrupt_tfrecord_crc_is_caught(tmp_path):
  scenes = [released_format.encode_scene(*_good(i)) for i in range(3)]
  path = _data_records.write_records(tmp_path / "001-of-001.tfrecord", scenes)
  data = bytearray(path.read_bytes())
  data[16 + len(scenes[0]) + 12 + 100] ^= 0xFF  # one flipped byte inside record 1's data.
  path.write_bytes(bytes(data))
  with pytest.raises(RecordError, match="record 1: truncated or corrupt TFRecord"):
    list(scene_records.scene_examples(path, SPEC, "train"))


def test_skip_stops_at_a_truncated_tail(tmp_path):
  path = _truncated_shard(tmp_path)
  kept = [key for key, _ in scene_records.scene_examples(path, SPEC, "train",
                                                         skip_bad_records=True)]
  assert kept == [f"train/001-of-001.tfrecord#{i}" for i in range(3)]


def _manual_dir_with(tmp_path, bad: bytes):
  """rooms_ring_camera with 6 good train scenes in two shards plus `bad` as record 1 of shard 2."""
  root = tmp_path / "manual" / "rooms_ring_camera"
  good = [released_format.encode_scene(*_good(i)) for i in range(6)]
  _data_records.write_records(root / "train" / "1-of-2.tfrecord", good[:3])
  _data_records.write_records(root / "train" / "2-of-2.tfrecord", [good[3], bad, *good[4:]])
  _data_records.write_records(root / "test" / "1-of-1.tfrecord", good[:2])
  return tmp_path / "manual", root / "train" / "2-of-2.tfrecord"


def test_build_stops_naming_the_bad_record(tmp_path):
  bad, message = _bad_scenes()["garbage_jpeg"]
  manual, shard = _manual_dir_with(tmp_path, bad)
  with pytest.raises(Exception) as error:  # Beam may re-raise under its own type.
    _data_builder.build("rooms_ring_camera", manual, tmp_path / "tfds")
  assert f"{shard}, record 1, {message}" in str(error.value)


def test_build_variant_skips_and_counts_bad_records(tmp_path, caplog):
  manual, shard = _manual_dir_with(tmp_path, _bad_scenes()["nine_frames"][0])
  config = _data_builder.builder_module().GqnConfig(
      name="rooms_ring_camera-skip_bad", skip_bad_records=True)
  with caplog.at_level(logging.WARNING):
    builder = _data_builder.build(config, manual, tmp_path / "tfds")
  assert builder.info.splits["train"].num_examples == 6
  assert (tmp_path / "tfds" / "gqn" / "rooms_ring_camera-skip_bad").is_dir()
  skipped = [r for r in caplog.records if "skipping bad record" in r.getMessage()]
  assert len(skipped) == 1 and f"{shard}, record 1" in skipped[0].getMessage()


def test_mixed_shard_sets_are_refused(tmp_path):
  for name in ("1-of-2.tfrecord", "1-of-3.tfrecord"):
    (tmp_path / name).write_bytes(b"")
  with pytest.raises(ValueError, match=r"mix totals \[2, 3\]"):
    scene_records.list_shards(tmp_path)


# The input pipeline: records that reach training are checked again, and options that cannot
# give a valid batch are refused up front.

def _layout(views=5):
  return input_pipeline.Layout(frames_per_scene=10, frame_size=64, max_context_views=views,
                               where="gqn/rooms_ring_camera/1.0.0 train")


def _stored(frames, cameras, scene="train/1-of-1.tfrecord#0"):
  from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top
  example = example_pb2.Example.FromString(_example(frames, cameras))
  example.features.feature["scene"].bytes_list.value.append(scene.encode())
  return example.SerializeToString()


def _batcher(views=5, count=None):
  return input_pipeline.SceneBatcher(layout=_layout(views), image_size=32,
                                     num_context_views=count, pose_order="sin_cos", seed=0,
                                     process_index=0)


@pytest.mark.parametrize("case", ["garbage_jpeg", "nine_frames", "camera_count",
                                  "non_finite_camera", "not_an_example"])
def test_pipeline_names_dataset_record_and_problem(case):
  bad, message = _bad_scenes()[case]
  from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top
  try:
    example = example_pb2.Example.FromString(bad)
    example.features.feature["scene"].bytes_list.value.append(b"train/1-of-1.tfrecord#5")
    bad = example.SerializeToString()
  except Exception:  # pylint: disable=broad-except  # not an Example at all: keep the bytes.
    pass
  good = _stored(*_good(1))
  # All 10 frames in context + query would need K = 9; decode every frame so that the bad one
  # is reached whichever frames are drawn.
  batcher = _batcher(views=9, count=9)
  with pytest.raises(RecordError) as error:
    batcher(0, [(0, good), (17, bad)])
  text = str(error.value)
  assert "gqn/rooms_ring_camera/1.0.0 train, record 17" in text
  assert message.split(": ")[-1].split(" in frame")[0] in text


def test_pipeline_refuses_k_without_a_distinct_query(tmp_path_factory):
  data_dir, _, _ = _data_builder.prepared(tmp_path_factory)
  with pytest.raises(ValueError, match="max_context_views=10 must be in 1..9"):
    input_pipeline.create_dataset("rooms_ring_camera", "train", data_dir=data_dir,
                                  global_batch_size=2, image_size=32, max_context_views=10,
                                  process_index=0, process_count=1)


@pytest.mark.parametrize("kwargs, message", [
    ({"num_context_views": 6}, "num_context_views=6 must be in 1..5"),
    ({"num_context_views": 0}, "num_context_views=0 must be in 1..5"),
    ({"global_batch_size": 3, "process_count": 2}, "global_batch_size=3 is not divisible"),
    ({"pose_order": "xyz"}, "pose_order must be one of"),
    ({"global_batch_size": 200}, "fewer than its batch of 200"),
    ({"process_index": 2, "process_count": 2}, r"process_index=2 must be in 0..1"),
])
def test_pipeline_refuses_impossible_options(tmp_path_factory, kwargs, message):
  data_dir, _, _ = _data_builder.prepared(tmp_path_factory)
  args = dict(data_dir=data_dir, global_batch_size=2, image_size=32, process_index=0,
              process_count=1)
  args.update(kwargs)
  with pytest.raises(ValueError, match=message):
    input_pipeline.create_dataset("rooms_ring_camera", "train", **args)


def test_pipeline_names_the_build_command_for_a_missing_dataset(tmp_path):
  with pytest.raises(FileNotFoundError, match="tfds build data/gqn --config=jaco"):
    input_pipeline.create_dataset("jaco", "train", data_dir=tmp_path, global_batch_size=2,
                                  image_size=32, process_index=0, process_count=1)
