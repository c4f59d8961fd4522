"""TensorBoard event files and image grids, written without TensorFlow.

Events are TFRecord-framed ``Event`` protos, built with TensorBoard's own protos and record
writer (``tensorboard`` is a dependency; importing TensorFlow would cost seconds at start and
could claim accelerators). Only process 0 writes; other processes get a writer that does
nothing.
"""

import io
import os
import socket
import time
from typing import Mapping, Sequence

from etils import epath
import numpy as np
from PIL import Image
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.summary.writer import record_writer

SEPARATOR_PIXELS = 2


class SummaryWriter:
  """Appends scalars and images to ``<logdir>/events.out.tfevents.<time>.<host>.<pid>``."""

  def __init__(self, logdir, enabled: bool = True):
    self.enabled = enabled
    self.path = None
    if not enabled:
      return
    logdir = epath.Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}"
    self.path = logdir / name
    self._file = self.path.open("wb")
    self._writer = record_writer.RecordWriter(self._file)
    self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

  def _write(self, event: event_pb2.Event) -> None:
    self._writer.write(event.SerializeToString())

  def scalars(self, step: int, values: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    summary = summary_pb2.Summary(value=[
        summary_pb2.Summary.Value(tag=tag, simple_value=float(value))
        for tag, value in values.items()])
    self._write(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

  def image(self, step: int, tag: str, pixels: np.ndarray) -> None:
    """``pixels``: uint8 [H, W, 3]."""
    if not self.enabled:
      return
    image = summary_pb2.Summary.Image(height=pixels.shape[0], width=pixels.shape[1],
                                      colorspace=3, encoded_image_string=png_bytes(pixels))
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, image=image)])
    self._write(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

  def flush(self) -> None:
    if self.enabled:
      self._writer.flush()

  def close(self) -> None:
    if self.enabled and not self._writer.closed:
      self._writer.close()


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
