"""Hand-written scenes in the released format, for the dataset and pipeline tests.

Written with released_format.encode_scene and tf.io.TFRecordWriter, not with the generator, so
the tests check the reader against the format itself. Every frame is a random-noise JPEG (so no
two frames share bytes) and every camera value is distinct, so a test can tell frames, scenes
and cameras apart.
"""

import io
import pathlib

import numpy as np
from PIL import Image

from gqn_jax import released_format


def jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
  return buffer.getvalue()


def random_scene(rng: np.random.Generator, frames: int, size: int):
  """(S JPEG byte strings, cameras float32 [S, 5]) with random pixels and cameras."""
  jpegs = [jpeg(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(frames)]
  cameras = rng.uniform(-3.0, 3.0, (frames, 5)).astype(np.float32)
  return jpegs, cameras


def write_records(path, records) -> pathlib.Path:
  """Writes serialized records to one TFRecord file."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with tf.io.TFRecordWriter(str(path)) as writer:
    for record in records:
      writer.write(record)
  return path


def write_dataset(root, name: str, scenes_per_split: dict, scenes_per_shard: int, *,
                  frames: int | None = None, size: int | None = None, seed: int = 0):
  """Writes ``<root>/<name>/<split>/<i>-of-<n>.tfrecord``; returns {split: [(jpegs, cameras)]}.

  The scenes come back in file order (shard by shard, record by record).
  """
  info = released_format.DATASETS[name]
  frames = frames or info.frames_per_scene
  size = size or info.frame_size
  rng = np.random.default_rng(seed)
  written = {}
  for split, count in scenes_per_split.items():
    scenes = [random_scene(rng, frames, size) for _ in range(count)]
    shards = max(1, -(-count // scenes_per_shard))
    for index in range(shards):
      chunk = scenes[index * scenes_per_shard:(index + 1) * scenes_per_shard]
      write_records(pathlib.Path(root) / name / split / released_format.shard_name(
          index + 1, shards), [released_format.encode_scene(*scene) for scene in chunk])
    written[split] = scenes
  return written
