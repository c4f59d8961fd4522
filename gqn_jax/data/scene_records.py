"""Released-format shards -> checked scenes, for the TFDS conversion (data/gqn).

Every scene that reaches the TFDS dataset has passed :func:`check_scene`: S frames, each a JPEG
that decodes to an RGB image of the dataset's frame size, and S x 5 finite camera values. A
record that fails raises :class:`released_format.RecordError` naming the shard and the record
index; with ``skip_bad_records=True`` it is logged, counted (Beam counter ``gqn/bad_records``)
and left out instead.

The functions here run inside Beam workers, so they live in an installed package (pickled by
reference, importable on Dataflow workers) rather than in the builder module.
"""

import dataclasses
import io
import logging
import re
from typing import Iterator

from etils import epath
import numpy as np

from gqn_jax import extras
from gqn_jax import released_format
from gqn_jax.released_format import RecordError

SHARD_PATTERN = re.compile(r"^(\d+)-of-(\d+)\.tfrecord$")


@dataclasses.dataclass(frozen=True)
class SceneSpec:
  """What every scene of one dataset must look like."""
  frames_per_scene: int  # S
  frame_size: int        # pixels per side of each frame.


def list_shards(split_dir) -> list[epath.Path]:
  """The ``<i>-of-<n>.tfrecord`` files of one split directory, in shard order.

  ``split_dir`` may be local or remote (``gs://...``: Dataflow workers read the shards there).
  Raises FileNotFoundError when the directory holds none, ValueError when the names mix
  different totals n (two downloads in one directory).
  """
  split_dir = epath.Path(split_dir)
  if not split_dir.is_dir():
    raise FileNotFoundError(f"{split_dir}: no such directory")
  matches = [(SHARD_PATTERN.match(p.name), p) for p in split_dir.iterdir()]
  shards = sorted((int(m.group(1)), int(m.group(2)), p) for m, p in matches if m)
  if not shards:
    raise FileNotFoundError(f"{split_dir}: no '<i>-of-<n>.tfrecord' shards")
  totals = sorted({total for _, total, _ in shards})
  if len(totals) > 1:
    raise ValueError(f"{split_dir}: shard names mix totals {totals}; one dataset per directory")
  return [path for _, _, path in shards]


def read_records(path) -> Iterator[tuple[int, bytes]]:
  """Yields (record index, serialized record) of one TFRecord file, checking its CRCs.

  A truncated or corrupt file raises RecordError naming the file and the first unreadable record.
  """
  tf = extras.require("tensorflow", "data", "reading TFRecord files")
  records = iter(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
  index = 0
  while True:
    try:
      record = next(records)
    except StopIteration:
      return
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
      raise RecordError(f"{path}, record {index}: truncated or corrupt TFRecord "
                        f"({error.message.strip()})") from None
    yield index, record
    index += 1


def check_frame(jpeg: bytes, frame_size: int, where: str) -> None:
  """Raises RecordError (naming ``where``) unless ``jpeg`` decodes to a frame_size^2 RGB image."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(io.BytesIO(jpeg)) as image:
      image_format, mode, size = image.format, image.mode, image.size
      image.load()  # the header alone says nothing about truncated or corrupt data.
  except (OSError, SyntaxError, ValueError) as error:
    raise RecordError(f"{where}: not a decodable JPEG ({type(error).__name__}: {error})") from None
  if image_format != "JPEG":
    raise RecordError(f"{where}: a {image_format} image, expected JPEG")
  if mode != "RGB":
    raise RecordError(f"{where}: {mode} image, expected RGB")
  if size != (frame_size, frame_size):
    raise RecordError(f"{where}: {size[0]}x{size[1]} px, expected {frame_size}x{frame_size}")


def check_scene(serialized: bytes, spec: SceneSpec, where: str):
  """A serialized scene -> (S JPEG byte strings, cameras float32 [S, 5]), or RecordError."""
  frames, cameras = released_format.decode_scene(serialized, spec.frames_per_scene, where)
  for index, jpeg in enumerate(frames):
    check_frame(jpeg, spec.frame_size, f"{where}, frame {index}")
  if not np.all(np.isfinite(cameras)):
    bad = sorted({int(i) for i in np.argwhere(~np.isfinite(cameras))[:, 0]})
    raise RecordError(f"{where}: non-finite camera values in frame(s) {bad}")
  return frames, cameras


def scene_examples(path, spec: SceneSpec, split: str, skip_bad_records: bool = False):
  """Yields (key, TFDS example) for every scene of one shard; the Beam conversion's map.

  The key ``<split>/<file>#<record>`` is also stored as the example's ``scene`` feature, so every
  example can be traced back to the record it came from.
  """
  path = epath.Path(path)
  records = read_records(path)
  while True:
    try:
      index, serialized = next(records)
      scene = f"{split}/{path.name}#{index}"
      frames, cameras = check_scene(serialized, spec, f"{path}, record {index}")
    except StopIteration:
      return
    except RecordError as error:
      if not skip_bad_records:
        raise
      # After a TFRecord framing error `records` is finished (past a broken length or CRC
      # the rest of the file cannot be framed), so the next call ends the loop.
      _count_bad_record(error)
      continue
    yield scene, {"frames": frames, "cameras": cameras, "scene": scene}


def _count_bad_record(error: RecordError) -> None:
  logging.warning("skipping bad record: %s", error)
  Metrics = extras.require("apache_beam.metrics", "data").Metrics
  Metrics.counter("gqn", "bad_records").inc()
