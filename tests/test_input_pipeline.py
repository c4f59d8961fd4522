"""The grain input pipeline: the batch contract, distinct views, poses, M, resumption, sharding."""

import io
import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import _data_builder
import _data_records
from gqn_jax import input_pipeline
from gqn_jax import model
from gqn_jax.data import frames as frames_lib

K = 5  # rooms_ring_camera
TRAIN_SCENES = 43


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  """(data_dir, {camera position: (scene, frame)}, written train scenes)."""
  data_dir, _, written = _data_builder.prepared(tmp_path_factory, train=TRAIN_SCENES)
  where = {}
  for scene, (_, cameras) in enumerate(written["train"]):
    for frame, camera in enumerate(cameras):
      where[tuple(camera[:3].tolist())] = (scene, frame)
  assert len(where) == TRAIN_SCENES * 10  # random cameras: every position names one frame.
  return data_dir, where, written["train"]


def _dataset(data_dir, **kwargs):
  args = dict(data_dir=data_dir, global_batch_size=4, image_size=16, seed=3, process_index=0,
              process_count=1, read_threads=2)
  args.update(kwargs)
  return input_pipeline.create_dataset("rooms_ring_camera", "train", **args)


def _take(iterator, count):
  return [next(iterator) for _ in range(count)]


def _views(batch, where):
  """Per row: [(scene, frame) of each real context view] and (scene, frame) of the query."""
  rows = []
  for row in range(batch["query_pose"].shape[0]):
    count = int(batch["context_mask"][row].sum())
    context = [where[tuple(p[:3].tolist())] for p in batch["context_poses"][row, :count]]
    rows.append((context, where[tuple(batch["query_pose"][row, :3].tolist())]))
  return rows


@pytest.mark.parametrize("image_size", [32, 64])
def test_batch_contract(prepared, image_size):
  data_dir, _, _ = prepared
  iterator = iter(_dataset(data_dir, global_batch_size=8, image_size=image_size))
  for batch in _take(iterator, 6):
    spec = model.batch_spec(8, K, image_size)
    assert {k: (v.shape, v.dtype) for k, v in batch.items()} == spec
    mask = batch["context_mask"]
    count = int(mask[0].sum())
    assert 1 <= count <= K
    expected = np.broadcast_to(np.arange(K) < count, mask.shape)  # one M, real views first.
    np.testing.assert_array_equal(mask, expected)
    assert not batch["context_images"][:, count:].any()  # padding is zeros...
    assert not batch["context_poses"][:, count:].any()
    for images in (batch["context_images"][:, :count], batch["query_image"]):
      assert 0.0 <= images.min() and images.max() <= 1.0 and images.max() > 0.0


@pytest.mark.parametrize("image_size", [64, 32])
def test_views_are_distinct_frames_of_one_scene_with_their_images(prepared, image_size):
  """Each view's image is its JPEG's pixels (resized like jax.image.resize), beside its pose."""
  import jax  # pylint: disable=g-import-not-at-top
  data_dir, where, scenes = prepared

  def expected_image(jpeg):
    pixels = np.asarray(Image.open(io.BytesIO(jpeg)), np.float32) / 255.0
    return jax.image.resize(pixels, (image_size, image_size, 3), "linear", antialias=True)

  iterator = iter(_dataset(data_dir, image_size=image_size))
  for batch in _take(iterator, 6):
    for row, (context, query) in enumerate(_views(batch, where)):
      views = context + [query]
      assert len({scene for scene, _ in views}) == 1, "views from different scenes"
      assert len(set(views)) == len(views), "a frame drawn twice"
      jpegs = scenes[query[0]][0]
      for slot, (_, frame) in enumerate(context):
        np.testing.assert_allclose(batch["context_images"][row, slot],
                                   expected_image(jpegs[frame]), atol=1e-5)
      np.testing.assert_allclose(batch["query_image"][row], expected_image(jpegs[query[1]]),
                                 atol=1e-5)


@pytest.mark.parametrize("order", ["sin_cos", "cos_sin"])
def test_poses_are_the_documented_conversion(prepared, order):
  data_dir, where, scenes = prepared
  batch = next(iter(_dataset(data_dir, pose_order=order, num_context_views=K)))
  for row, (context, query) in enumerate(_views(batch, where)):
    for pose, (scene, frame) in zip([*batch["context_poses"][row], batch["query_pose"][row]],
                                    context + [query]):
      x, y, z, yaw, pitch = (float(v) for v in scenes[scene][1][frame])
      if order == "sin_cos":
        expected = [x, y, z, math.sin(yaw), math.cos(yaw), math.sin(pitch), math.cos(pitch)]
      else:
        expected = [x, y, z, math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)]
      np.testing.assert_allclose(pose, expected, rtol=0, atol=1e-6)


def test_context_count_takes_every_value_1_to_k(prepared):
  data_dir, _, _ = prepared
  iterator = iter(_dataset(data_dir, global_batch_size=2, image_size=4))
  counts = [int(b["context_mask"][0].sum()) for b in _take(iterator, 100)]
  assert set(counts) == set(range(1, K + 1))
  # Uniform: with 100 draws each value's count is 20 +- 4 sigma (sigma = 4).
  assert all(4 <= counts.count(m) <= 36 for m in range(1, K + 1)), counts


def test_fixed_context_count(prepared):
  data_dir, _, _ = prepared
  iterator = iter(_dataset(data_dir, image_size=4, num_context_views=2))
  assert all(b["context_mask"].sum(axis=1).tolist() == [2] * 4 for b in _take(iterator, 5))


def _assert_same(batches, others):
  assert len(batches) == len(others)
  for a, b in zip(batches, others):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_restored_iterator_yields_the_same_batches(prepared):
  """Stop after 7 batches, save the state as JSON, restore into a new iterator: the next 6
  batches (crossing the 10-batch epoch boundary) are those of an uninterrupted run."""
  data_dir, _, _ = prepared
  iterator = iter(_dataset(data_dir))
  _take(iterator, 7)
  state = json.loads(json.dumps(iterator.get_state()))
  reference = _take(iterator, 6)
  resumed = iter(_dataset(data_dir))
  resumed.set_state(state)
  _assert_same(_take(resumed, 6), reference)


@pytest.mark.slow
def test_restored_multiprocess_iterator_yields_the_same_batches(prepared):
  data_dir, _, _ = prepared
  plain = _take(iter(_dataset(data_dir)), 9)
  iterator = iter(_dataset(data_dir, worker_count=2))
  _assert_same(_take(iterator, 4), plain[:4])  # worker processes change nothing.
  state = json.loads(json.dumps(iterator.get_state()))
  resumed = iter(_dataset(data_dir, worker_count=2))
  resumed.set_state(state)
  _assert_same(_take(resumed, 5), plain[4:])


def test_batches_depend_on_the_seed_only(prepared):
  data_dir, _, _ = prepared
  first, again = (_take(iter(_dataset(data_dir, seed=5)), 3) for _ in range(2))
  _assert_same(first, again)
  other = _take(iter(_dataset(data_dir, seed=6)), 3)
  assert any(not np.array_equal(a["query_pose"], b["query_pose"]) for a, b in zip(first, other))


def _query_scenes(dataset, where):
  return [scene for batch in dataset for _, (scene, _) in _views(batch, where)]


def test_epochs_visit_every_scene_once_in_a_new_order(prepared):
  data_dir, where, _ = prepared
  seen = _query_scenes(_dataset(data_dir, global_batch_size=1, image_size=4, num_epochs=2),
                       where)
  first, second = seen[:TRAIN_SCENES], seen[TRAIN_SCENES:]
  assert sorted(first) == sorted(second) == list(range(TRAIN_SCENES))
  assert first != second


def test_unshuffled_order_is_the_stored_order(prepared, tmp_path_factory):
  data_dir, where, scenes = prepared
  _, builder, _ = _data_builder.prepared(tmp_path_factory, train=TRAIN_SCENES)
  stored = [s["scene"].decode() for s in builder.as_data_source("train")]
  names = {f"train/{i // 10 + 1}-of-5.tfrecord#{i % 10}": i for i in range(TRAIN_SCENES)}
  seen = _query_scenes(_dataset(data_dir, global_batch_size=1, image_size=4, num_epochs=1,
                                shuffle=False), where)
  assert seen == [names[name] for name in stored]


@pytest.mark.parametrize("processes", [2, 3])
def test_process_shards_are_disjoint_and_cover_the_split(prepared, processes):
  data_dir, where, _ = prepared
  shards, counts = [], []
  for index in range(processes):
    dataset = _dataset(data_dir, global_batch_size=processes, image_size=4, num_epochs=1,
                       process_index=index, process_count=processes)
    batches = list(dataset)
    shards.append(_query_scenes(batches, where))
    counts.append([int(b["context_mask"][0].sum()) for b in batches])
  for a, b in itertools.combinations(shards, 2):
    assert not set(a) & set(b)
  # Global batches of `processes` scenes: the last TRAIN_SCENES % processes are left out.
  seen = sum(shards, [])
  assert len(seen) == len(set(seen)) == TRAIN_SCENES - TRAIN_SCENES % processes
  assert set(seen) <= set(range(TRAIN_SCENES))
  # One global batch shares one M on every process.
  steps = min(len(c) for c in counts)
  assert all(c[:steps] == counts[0][:steps] for c in counts)


@pytest.mark.parametrize("stored, size", [(128, 64), (84, 64), (64, 32), (32, 64), (64, 64)])
def test_resize_is_antialiased_bilinear(stored, size):
  """frames.resize is jax.image.resize(linear, antialias=True), down- and upsampling."""
  import jax  # pylint: disable=g-import-not-at-top
  images = np.random.default_rng(stored).uniform(0, 1, (2, stored, stored, 3)).astype(np.float32)
  expected = np.asarray(jax.image.resize(images, (2, size, size, 3), "linear", antialias=True))
  resized = frames_lib.resize(images, size)
  assert resized.shape == (2, size, size, 3)
  np.testing.assert_allclose(resized, expected, rtol=0, atol=2e-6)
  if stored != size:  # the check can tell filters apart.
    nearest = np.asarray(jax.image.resize(images, (2, size, size, 3), "nearest"))
    assert np.abs(resized - nearest).max() > 0.1


@pytest.fixture(params=["installed", "pil"])
def decoder(request, monkeypatch):
  """Runs a test with the installed decoder (simplejpeg if there) and with the PIL fallback."""
  if request.param == "pil":
    monkeypatch.setattr(frames_lib, "simplejpeg", None)
  return request.param


@pytest.mark.parametrize("subsampling", [0, 2])  # 4:4:4 and 4:2:0 chroma.
def test_decoders_agree_with_pil(subsampling, decoder):
  """Both decoding paths give PIL's pixels."""
  del decoder
  rng = np.random.default_rng(subsampling)
  pixels = np.kron(rng.integers(0, 256, (16, 16, 3)), np.ones((4, 4, 1))).astype(np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="JPEG", quality=85, subsampling=subsampling)
  jpeg = buffer.getvalue()
  np.testing.assert_array_equal(frames_lib.decode_jpeg(jpeg, "test"),
                                np.asarray(Image.open(io.BytesIO(jpeg))))


@pytest.mark.parametrize("bad", [b"\xff\xd8 not a JPEG", b"", "png", "truncated"])
def test_decoders_refuse_what_is_not_a_jpeg(bad, decoder):
  del decoder
  pixels = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
  if bad == "png":
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    bad = buffer.getvalue()
  elif bad == "truncated":
    jpeg = _data_records.jpeg(pixels)
    bad = jpeg[:len(jpeg) // 2]
  with pytest.raises(input_pipeline.RecordError, match="scene 7, frame 2"):
    frames_lib.decode_jpeg(bad, "scene 7, frame 2")


def test_reader_process_imports_no_tensorflow(prepared):
  data_dir, _, _ = prepared
  code = (
      "import sys\n"
      "from gqn_jax import input_pipeline\n"
      "ds = input_pipeline.create_dataset('rooms_ring_camera', 'train',"
      f" data_dir={str(data_dir)!r}, global_batch_size=2, image_size=16, process_index=0,"
      " process_count=1)\n"
      "batch = next(iter(ds))\n"
      "assert batch['query_image'].shape == (2, 16, 16, 3)\n"
      "loaded = [m for m in sys.modules if m == 'tensorflow' or m.startswith('tensorflow.')]\n"
      "assert not loaded, loaded[:5]\n")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
