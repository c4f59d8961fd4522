"""gqn_jax.generate writes the released layout and format, deterministically and resumably."""

import io
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gqn_jax import generate
from gqn_jax import released_format
from gqn_jax.scenes import shards
from gqn_jax.scenes import worker

REPO = pathlib.Path(__file__).resolve().parents[1]
NAME = "rooms_ring_camera"
SMALL = dict(train_scenes=5, test_scenes=2, scenes_per_shard=2, image_size=32, seed=4)


def _records(path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return [record.numpy() for record in tf.data.TFRecordDataset(str(path))]


def _split_scenes(directory, split, frames_per_scene):
  """[(JPEG strings, cameras)] of every record of a split, shard by shard, in file order."""
  scenes = []
  for path in sorted((directory / split).glob("*.tfrecord")):
    scenes += [released_format.decode_scene(r, frames_per_scene, f"{path}")
               for r in _records(path)]
  return scenes


def _snapshot(directory):
  """{relative path: (bytes, inode, mtime)} of every file under ``directory``."""
  return {str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns)
          for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  root = tmp_path_factory.mktemp("generated")
  directory = generate.write_dataset(NAME, root, workers=2, progress=False, **SMALL)
  return directory


def test_layout_and_names_are_the_released_ones(dataset):
  assert dataset.name == NAME
  files = sorted(str(p.relative_to(dataset)) for p in dataset.rglob("*") if p.is_file())
  shards_ = ["train/1-of-3.tfrecord", "train/2-of-3.tfrecord", "train/3-of-3.tfrecord",
             "test/1-of-1.tfrecord"]
  assert files == sorted(shards_ + [s + ".factors.jsonl" for s in shards_])
  assert [len(_records(dataset / s)) for s in shards_] == [2, 2, 1, 2]


def test_records_decode_to_frames_and_cameras(dataset):
  frames_per_scene = released_format.DATASETS[NAME].frames_per_scene
  for split, count in (("train", 5), ("test", 2)):
    scenes = _split_scenes(dataset, split, frames_per_scene)
    assert len(scenes) == count
    for index, (jpegs, cameras) in enumerate(scenes):
      frames, expected_cameras, _ = generate.render_scene(NAME, split, index, 32, SMALL["seed"])
      assert cameras.shape == (frames_per_scene, 5) and cameras.dtype == np.float32
      np.testing.assert_array_equal(cameras, expected_cameras)
      decoded = np.stack([np.asarray(Image.open(io.BytesIO(j))) for j in jpegs])
      assert decoded.shape == (frames_per_scene, 32, 32, 3) and decoded.dtype == np.uint8
      # JPEG is lossy, but the stored frames are the rendered ones.
      assert np.abs(decoded.astype(int) - frames).mean() < 4


def test_factors_files_describe_each_record_in_order(dataset):
  for split, count in (("train", 5), ("test", 2)):
    lines = []
    for path in sorted((dataset / split).glob("*.tfrecord")):
      factors_path = path.with_name(path.name + ".factors.jsonl")
      shard_lines = [json.loads(line) for line in factors_path.read_text().splitlines()]
      assert len(shard_lines) == len(_records(path))
      lines += shard_lines
    assert [f["index"] for f in lines] == list(range(count))
    for factors in lines:
      assert factors["split"] == split and factors["family"] == NAME
      assert factors["image_size"] == 32 and factors["seed"] == SMALL["seed"]
      assert {"wall", "floor", "objects", "lights"} <= set(factors)


def test_recorded_factors_reproduce_the_frames(dataset):
  factors = json.loads((dataset / "test/1-of-1.tfrecord.factors.jsonl").read_text()
                       .splitlines()[1])
  frames, cameras, _ = generate.render_scene(NAME, "test", 1, 32, SMALL["seed"])
  again = worker.call("render_factors", factors, cameras, 32)
  np.testing.assert_array_equal(again, frames)


def test_same_scene_renders_to_identical_bytes_anywhere():
  """Scene i is the same after other scenes, and in a fresh worker process."""
  first = generate.render_scene("rooms_free_camera_with_object_rotations", "train", 3, 32, 0)
  generate.render_scene("rooms_free_camera_with_object_rotations", "train", 9, 32, 0)
  generate.render_scene("shepard_metzler_5_parts", "train", 3, 32, 0)
  again = generate.render_scene("rooms_free_camera_with_object_rotations", "train", 3, 32, 0)
  fresh = worker.RenderProcess()
  try:
    elsewhere = fresh.call("render_scene", "rooms_free_camera_with_object_rotations", "train",
                           3, 32, 0)
  finally:
    fresh.close()
  for other in (again, elsewhere):
    np.testing.assert_array_equal(other[0], first[0])
    np.testing.assert_array_equal(other[1], first[1])
    assert other[2] == first[2]
  different = generate.render_scene("rooms_free_camera_with_object_rotations", "train", 4, 32, 0)
  assert not np.array_equal(different[0], first[0])
  assert different[2] != first[2]


def test_records_do_not_depend_on_workers_or_shard_size(dataset, tmp_path):
  other = generate.write_dataset(NAME, tmp_path, workers=1, progress=False,
                                 **{**SMALL, "scenes_per_shard": 3})
  assert sorted(p.name for p in (other / "train").glob("*.tfrecord")) == [
      "1-of-2.tfrecord", "2-of-2.tfrecord"]
  for split in ("train", "test"):
    mine = _split_scenes(dataset, split, 10)
    theirs = _split_scenes(other, split, 10)
    assert len(mine) == len(theirs)
    for (jpegs_a, cameras_a), (jpegs_b, cameras_b) in zip(mine, theirs):
      assert jpegs_a == jpegs_b
      np.testing.assert_array_equal(cameras_a, cameras_b)


def test_rerun_skips_complete_shards_and_redoes_interrupted_ones(dataset, tmp_path):
  directory = generate.write_dataset(NAME, tmp_path, workers=2, progress=False, **SMALL)
  reference = _snapshot(directory)
  # What a run killed while writing shard 2 leaves behind: temporary files, one of them cut
  # short, and possibly the renamed factors file without its .tfrecord.
  shard = directory / "train/2-of-3.tfrecord"
  shard.rename(shard.with_name(shard.name + ".tmp"))
  with open(shard.with_name(shard.name + ".tmp"), "r+b") as partial:
    partial.truncate(100)
  (directory / "test/1-of-1.tfrecord.factors.jsonl.tmp").write_text('{"index": 0}\n')
  generate.write_dataset(NAME, tmp_path, workers=2, progress=False, **SMALL)
  after = _snapshot(directory)
  assert sorted(after) == sorted(reference), "temporary files left over"
  for path, (content, inode, mtime) in reference.items():
    assert after[path][0] == content, path
    if not path.startswith("train/2-of-3"):
      assert after[path][1:] == (inode, mtime), f"{path} was rewritten"
  assert after["train/2-of-3.tfrecord"][1:] != reference["train/2-of-3.tfrecord"][1:]


def test_failed_run_leaves_no_shard_that_looks_complete(tmp_path, monkeypatch):
  calls, encode = [], released_format.encode_scene

  def failing_encode(jpegs, cameras):
    calls.append(1)
    if len(calls) == 3:  # the first scene of shard 2.
      raise RuntimeError("simulated crash")
    return encode(jpegs, cameras)

  monkeypatch.setattr(generate.released_format, "encode_scene", failing_encode)
  with pytest.raises(RuntimeError, match="simulated crash"):
    generate.write_dataset(NAME, tmp_path, workers=2, progress=False, **SMALL)
  train = tmp_path / NAME / "train"
  assert sorted(p.name for p in train.iterdir()) == [
      "1-of-3.tfrecord", "1-of-3.tfrecord.factors.jsonl"]
  monkeypatch.undo()
  generate.write_dataset(NAME, tmp_path, workers=2, progress=False, **SMALL)
  assert len(list(train.glob("*.tfrecord"))) == 3


def test_rerun_with_other_settings_refuses_to_mix_datasets(dataset):
  root = dataset.parent
  with pytest.raises(shards.ShardConflict, match="seed"):
    generate.write_dataset(NAME, root, progress=False, **{**SMALL, "seed": 5})
  with pytest.raises(shards.ShardConflict, match="layout of 3 shards"):
    generate.write_dataset(NAME, root, progress=False, **{**SMALL, "scenes_per_shard": 5})


@pytest.mark.parametrize("change,message", [
    ({"name": "rooms"}, "unknown scene family 'rooms'"),
    ({"name": "maze"}, "unknown scene family 'maze'"),
    ({"image_size": 0}, "image_size must be a positive integer, got 0"),
    ({"scenes_per_shard": 0}, "scenes_per_shard must be a positive integer"),
    ({"train_scenes": -1}, "train_scenes must be a non-negative integer, got -1"),
    ({"train_scenes": 0, "test_scenes": 0}, "nothing to generate"),
    ({"seed": -2}, "seed must be a non-negative integer"),
    ({"workers": 0}, "workers must be a positive integer"),
])
def test_bad_arguments_are_named(change, message, tmp_path):
  arguments = {"name": NAME, "root": tmp_path, **SMALL, "workers": 1, **change}
  with pytest.raises(ValueError, match=message):
    generate.write_dataset(arguments.pop("name"), arguments.pop("root"), **arguments)
  assert not any(tmp_path.iterdir()), "nothing is written for bad arguments"


@pytest.mark.parametrize("flags,message", [
    (["--name=rooms", "--train_scenes=1", "--test_scenes=0"], "--name=rooms: unknown scene"),
    (["--name=jaco", "--contact_sheet=x.png", "--contact_sheet_frames=0"],
     "--contact_sheet_frames must be a positive integer"),
    ([f"--name={NAME}", "--train_scenes=1", "--test_scenes=0", "--image_size=-3"],
     "--image_size must be a positive integer, got -3"),
    ([f"--name={NAME}", "--train_scenes=1"], "--test_scenes is required"),
    ([f"--name={NAME}", "--contact_sheet=x.png", "--contact_sheet_scenes=0"],
     "--contact_sheet_scenes must be a positive integer"),
])
def test_command_line_errors_name_the_flag(flags, message, tmp_path):
  result = subprocess.run([sys.executable, "-m", "gqn_jax.generate", f"--root={tmp_path}",
                           *flags], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
  assert result.returncode != 0
  assert message in result.stderr, result.stderr[-2000:]
  assert not any(tmp_path.iterdir())


def test_command_line_writes_dataset_and_contact_sheet(tmp_path):
  run = lambda *flags: subprocess.run(  # pylint: disable=g-long-lambda
      [sys.executable, "-m", "gqn_jax.generate", "--name=shepard_metzler_5_parts",
       "--image_size=24", "--noprogress", *flags], capture_output=True, text=True, cwd=REPO,
      timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))
  result = run(f"--root={tmp_path}", "--train_scenes=3", "--test_scenes=1", "--workers=1")
  assert result.returncode == 0, result.stderr[-2000:]
  assert len(_split_scenes(tmp_path / "shepard_metzler_5_parts", "train", 15)) == 3
  sheet = tmp_path / "sheet.png"
  result = run(f"--contact_sheet={sheet}", "--contact_sheet_scenes=2")
  assert result.returncode == 0, result.stderr[-2000:]
  # 2 rows of 15 frames of 24 px, 2 px apart.
  assert Image.open(sheet).size == (15 * 26 + 2, 2 * 26 + 2)
