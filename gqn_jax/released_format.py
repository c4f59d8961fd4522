"""DeepMind's released GQN data format: dataset table, shard names, one scene per record.

Layout: ``<root>/<name>/<train|test>/<i>-of-<n>.tfrecord`` with i counted from 1 and both numbers
zero-padded to the width of n. Each record is a ``tf.train.Example`` with

* ``frames``: S JPEG-encoded RGB frames (bytes list);
* ``cameras``: S * 5 float32 values, per frame x, y, z, yaw, pitch (radians).

The generator writes this format and the TFDS builder reads it, so generated and downloaded
scenes take one path into training.
"""

import dataclasses
from typing import Sequence

import numpy as np

from gqn_jax import extras
from gqn_jax.poses import CAMERA_DIM


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  frame_size: int          # pixels per side of the stored frames.
  frames_per_scene: int    # S
  train_files: int
  test_files: int
  max_context_views: int   # K in the paper; at most S - 1 so that the query is a distinct frame.


# The release's table (docs/data.md, "The seven datasets"), K from the paper (Eslami et al.,
# Science 2018, supplementary material). The paper trains Shepard-Metzler with K = 15, but a
# scene has only 15 frames and the query must be a distinct one, so K is 14 there.
DATASETS = {
    "rooms_ring_camera": DatasetInfo(64, 10, 2160, 240, 5),
    "rooms_free_camera_no_object_rotations": DatasetInfo(64, 10, 2160, 240, 5),
    "rooms_free_camera_with_object_rotations": DatasetInfo(128, 10, 2034, 226, 5),
    "jaco": DatasetInfo(64, 11, 3600, 400, 7),
    "shepard_metzler_5_parts": DatasetInfo(64, 15, 900, 100, 14),
    "shepard_metzler_7_parts": DatasetInfo(64, 15, 900, 100, 14),
    "mazes": DatasetInfo(84, 300, 1080, 120, 20),
}
SPLITS = ("train", "test")
GSUTIL_COMMAND = "gsutil -m cp -R gs://gqn-dataset/{name} {manual_dir}"


class RecordError(ValueError):
  """A record that does not hold one scene in the released format; says which record."""


def shard_name(index: int, total: int) -> str:
  """File name of shard ``index`` (1-based) of ``total``, e.g. ``001-of-900.tfrecord``."""
  if not 1 <= index <= total:
    raise ValueError(f"shard index must be in 1..{total}, got {index}")
  width = len(str(total))
  return f"{index:0{width}d}-of-{total:0{width}d}.tfrecord"


def encode_scene(frames: Sequence[bytes], cameras) -> bytes:
  """One scene -> a serialized tf.train.Example. ``frames``: S JPEG byte strings; cameras [S, 5]."""
  example_pb2 = extras.require("tensorflow.core.example.example_pb2", "data")
  cameras = np.asarray(cameras, np.float32)
  if cameras.shape != (len(frames), CAMERA_DIM):
    raise ValueError(f"cameras must have shape ({len(frames)}, {CAMERA_DIM}) for "
                     f"{len(frames)} frames, got {cameras.shape}")
  example = example_pb2.Example()
  example.features.feature["frames"].bytes_list.value.extend(frames)
  example.features.feature["cameras"].float_list.value.extend(cameras.reshape(-1).tolist())
  return example.SerializeToString()


def decode_scene(serialized: bytes, frames_per_scene: int, where: str = "record"):
  """A serialized tf.train.Example -> (S JPEG byte strings, cameras float32 [S, 5]).

  Raises RecordError naming ``where`` (e.g. 'file.tfrecord, record 17') when the record is not
  a scene of ``frames_per_scene`` frames.
  """
  from google.protobuf import message  # pylint: disable=g-import-not-at-top
  example_pb2 = extras.require("tensorflow.core.example.example_pb2", "data")
  example = example_pb2.Example()
  try:
    example.ParseFromString(serialized)
  except message.DecodeError as error:
    raise RecordError(f"{where}: not a tf.train.Example ({error})") from None
  features = example.features.feature
  for key in ("frames", "cameras"):
    if key not in features:
      raise RecordError(f"{where}: no '{key}' feature (has {sorted(features)})")
  frames = list(features["frames"].bytes_list.value)
  cameras = np.asarray(features["cameras"].float_list.value, np.float32)
  if len(frames) != frames_per_scene:
    raise RecordError(f"{where}: {len(frames)} frames, expected {frames_per_scene}")
  if cameras.size != frames_per_scene * CAMERA_DIM:
    raise RecordError(f"{where}: {cameras.size} camera values, expected "
                      f"{frames_per_scene} x {CAMERA_DIM} = {frames_per_scene * CAMERA_DIM}")
  return frames, cameras.reshape(frames_per_scene, CAMERA_DIM)
