"""A contact sheet: a few scenes, one row each, every camera of a scene along its row."""

import pathlib

import numpy as np

from gqn_jax.scenes import get_family
from gqn_jax.scenes import worker

GAP = 2  # pixels of background between frames and between rows.


def tile(rows: list[np.ndarray], background: int = 255) -> np.ndarray:
  """Rows of frames, each uint8 [S, H, W, 3], -> one uint8 [rows * (H + gap), ..., 3] image."""
  height, width = rows[0].shape[1:3]
  columns = max(len(row) for row in rows)
  sheet = np.full((len(rows) * (height + GAP) + GAP, columns * (width + GAP) + GAP, 3),
                  background, np.uint8)
  for r, row in enumerate(rows):
    for c, frame in enumerate(row):
      top, left = GAP + r * (height + GAP), GAP + c * (width + GAP)
      sheet[top:top + height, left:left + width] = frame
  return sheet


def write(path, name: str, *, scenes: int = 4, image_size: int | None = None, seed: int = 0,
          split: str = "train", frames: int | None = None) -> pathlib.Path:
  """Renders scenes 0 .. scenes-1 of ``split`` and writes their contact sheet as a PNG.

  ``image_size`` None is the family's default; ``frames`` keeps the first frames of each scene
  (None: all; a mazes scene has 300).
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if scenes < 1:
    raise ValueError(f"contact sheet scenes must be positive, got {scenes}")
  if frames is not None and frames < 1:
    raise ValueError(f"contact sheet frames must be positive, got {frames}")
  if image_size is None:
    image_size = get_family(name).default_image_size
  rows = [worker.call("render_scene", name, split, index, image_size, seed)[0][:frames]
          for index in range(scenes)]
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(tile(rows)).save(path, optimize=True)
  return path
