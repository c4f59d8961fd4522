"""Training metrics through clu's metric writers, and the image grids the trainer logs.

``SummaryWriter`` keeps the interface the trainer calls (``scalars``, ``image``, ``hparams``,
``flush``, ``close``) over ``clu.metric_writers.create_default_writer``, as the flax examples use
it: on process 0 a LoggingWriter plus clu's SummaryWriter, which writes TensorBoard event files
(``events.out.tfevents.*``) with TensorFlow's ``tf.summary`` to a local or ``gs://`` logdir; on
every other process only the LoggingWriter (``just_logging``), so only process 0 writes files.
Writes are asynchronous; ``flush`` (the trainer calls it at log steps) waits for them.

clu's metric writers import TensorFlow. Without it (the core install; the tensorboard extra adds
it), or without clu, the writer logs scalars only and says once what to install for event files.
"""

import io
import logging
from typing import Any, Mapping, Sequence

from etils import epath
import numpy as np
from PIL import Image

from gqn_jax import extras

SEPARATOR_PIXELS = 2

_warned_no_event_files = False


def _hide_gpus_from_tensorflow() -> None:
  """TensorFlow only writes summaries here; a CUDA build must not claim JAX's GPU memory."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # TensorFlow has already initialised its devices; nothing to do then.
    pass


def create_writer(logdir, enabled: bool = True):
  """clu's default writer for ``logdir``: event files on process 0 (``enabled``), logs elsewhere.

  Returns a LoggingOnlyWriter (and warns once) where TensorFlow or clu is not installed.
  """
  global _warned_no_event_files
  missing = [name for name in ("clu", "tensorflow") if not extras.available(name)]
  if missing:
    if enabled and not _warned_no_event_files:
      logging.warning("no TensorBoard event files: clu's SummaryWriter needs %s, which is not "
                      "installed (%s); logging scalars only", " and ".join(missing),
                      extras.install_line("tensorboard"))
      _warned_no_event_files = True
    return LoggingOnlyWriter()
  if enabled:
    _hide_gpus_from_tensorflow()
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  if enabled:
    epath.Path(logdir).mkdir(parents=True, exist_ok=True)
  return metric_writers.create_default_writer(str(logdir), just_logging=not enabled)


class LoggingOnlyWriter:
  """The part of clu's MetricWriter interface the trainer uses, logging scalars with ``logging``."""

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    logging.info("[%d] %s", step, ", ".join(f"{k}={float(v):.6g}" for k, v in scalars.items()))

  def write_images(self, step: int, images: Mapping[str, Any]) -> None:
    del step, images

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    del hparams

  def flush(self) -> None:
    pass

  def close(self) -> None:
    pass


def flat_hparams(values) -> dict[str, bool | int | float | str]:
  """A config (ConfigDict or nested mapping) -> {'section.field': value} TensorBoard accepts."""
  if hasattr(values, "to_dict"):
    values = values.to_dict()
  flat = {}

  def visit(prefix, value):
    if isinstance(value, Mapping):
      for key, item in value.items():
        visit(f"{prefix}.{key}" if prefix else str(key), item)
    elif isinstance(value, (bool, int, float, str)):
      flat[prefix] = value
    elif isinstance(value, (np.integer, np.floating, np.bool_)):
      flat[prefix] = value.item()
    else:  # None, lists, tuples: their text.
      flat[prefix] = str(value)

  visit("", values)
  return flat


class SummaryWriter:
  """Scalars, images and hyperparameters of a run under ``logdir``, through clu (see above).

  ``enabled``: whether this process writes event files (process 0); the others only log.
  """

  def __init__(self, logdir, enabled: bool = True):
    self.enabled = enabled
    self.logdir = epath.Path(logdir)
    self._writer = create_writer(self.logdir, enabled)
    self._closed = False

  @property
  def writes_event_files(self) -> bool:
    return self.enabled and not isinstance(self._writer, LoggingOnlyWriter)

  def scalars(self, step: int, values: Mapping[str, float]) -> None:
    self._writer.write_scalars(int(step), {tag: float(value) for tag, value in values.items()})

  def image(self, step: int, tag: str, pixels: np.ndarray) -> None:
    """``pixels``: uint8 [H, W, 3]."""
    if not self.enabled:
      return  # the LoggingWriter of other processes would only log its shape.
    self._writer.write_images(int(step), {tag: np.asarray(pixels, np.uint8)[None]})

  def hparams(self, values) -> None:
    """The run's config (a ConfigDict or nested mapping), flattened to 'section.field' keys."""
    if self.enabled:
      self._writer.write_hparams(flat_hparams(values))

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    if not self._closed:
      self._closed = True
      self._writer.close()


def files_under(root) -> list[str]:
  """The files below ``root`` (a local path or a URL such as gs://...), as sorted relative paths.

  One listing per directory (``epath.Path.walk``) rather than a stat per entry: on GCS each
  stat is a request, and a run's images/ directory holds a file per image step. A missing
  ``root`` has no files.
  """
  found, top = [], None
  for directory, _, files in epath.Path(root).walk():
    # Walked directories are named relative to the first one: the fsspec backend drops their
    # gs:// (or s3://), so they are not joined onto anything, only cut down to what follows.
    top = str(directory) if top is None else top
    below = str(directory)[len(top):].strip("/")
    found.extend(f"{below}/{name}" if below else name for name in files)
  return sorted(found)


def png_bytes(pixels: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="PNG")
  return buffer.getvalue()


def write_png(path, pixels: np.ndarray) -> epath.Path:
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(png_bytes(pixels))
  return path


def to_uint8(images) -> np.ndarray:
  """Float images in [0, 1] (anything outside is clipped) -> uint8."""
  return np.round(np.clip(np.asarray(images, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def scene_grid(context_images, context_mask, query_image, columns: Sequence[tuple[str, object]],
               ) -> np.ndarray:
  """One row per scene: its K context views, the true query view, then each extra column.

  Args:
    context_images: [B, K, H, W, 3] in [0, 1]; views where ``context_mask`` is False are
      left dark grey.
    context_mask: [B, K] bool.
    query_image: [B, H, W, 3], the true view from the query pose.
    columns: (name, [B, H, W, 3]) pairs, e.g. the reconstruction and prior samples.

  Returns:
    uint8 [rows, cols, 3], white lines between images and a wider gap before the query.
  """
  context_images = np.asarray(context_images)
  batch, views, size = context_images.shape[:3]
  mask = np.asarray(context_mask, bool)
  tiles = [[np.where(mask[b, k], context_images[b, k], 0.25) for k in range(views)]
           for b in range(batch)]
  extra = [np.asarray(query_image)] + [np.asarray(images) for _, images in columns]
  step = size + SEPARATOR_PIXELS
  gap = 3 * SEPARATOR_PIXELS  # sets the context views apart from what is predicted.
  width = (views + len(extra)) * step + gap
  grid = np.ones((batch * step, width, 3), np.float32)
  for b in range(batch):
    top = b * step
    for k, tile in enumerate(tiles[b]):
      grid[top:top + size, k * step:k * step + size] = tile
    for c, images in enumerate(extra):
      left = (views + c) * step + gap
      grid[top:top + size, left:left + size] = images[b]
  return to_uint8(grid)


def grid_legend(views: int, columns: Sequence[str]) -> str:
  """What the columns of ``scene_grid`` show, for a caption."""
  return f"{views} context views (grey: unused) | true query view | " + " | ".join(columns)
