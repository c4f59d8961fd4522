"""One scene: its random stream, its factors and cameras, its frames, its JPEG record.

Scene ``index`` of ``split`` draws everything from a generator seeded by (seed, split, index,
family) alone, so its content does not depend on how scenes are spread over shards, processes or
Beam workers. Rendering is deterministic for a given GL backend and machine.

The rendering functions here run in the calling process, which must be a render worker (see
``worker.py``: OSMesa and TensorFlow cannot share a process); elsewhere call them through
``worker.call`` or use ``gqn_jax.generate.render_scene``.
"""

import io
import zlib

import numpy as np

from gqn_jax import released_format
from gqn_jax.scenes import get_family

JPEG_QUALITY = 95  # with 4:4:4 chroma: at 64 px, 4:2:0 subsampling visibly smears colours.


def check_arguments(name: str, split: str, index: int, seed: int, image_size=1) -> None:
  """Raises ValueError naming the argument of a scene that cannot work."""
  get_family(name)
  if split not in released_format.SPLITS:
    raise ValueError(f"split must be one of {released_format.SPLITS}, got {split!r}")
  for argument, value, least in (("index", index, 0), ("seed", seed, 0),
                                 ("image_size", image_size, 1)):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
      kind = "positive" if least else "non-negative"
      raise ValueError(f"{argument} must be a {kind} integer, got {value!r}")


def scene_rng(name: str, split: str, index: int, seed: int) -> np.random.Generator:
  """The random stream of one scene."""
  check_arguments(name, split, index, seed)
  return np.random.default_rng(
      [int(seed), released_format.SPLITS.index(split), int(index), zlib.crc32(name.encode())])


def sample_scene(name: str, split: str, index: int, seed: int):
  """(factors dict, cameras float32 [S, 5]) of one scene, without rendering it."""
  family = get_family(name)
  factors, cameras = family.sample(scene_rng(name, split, index, seed))
  return {"family": name, "split": split, "index": int(index), "seed": int(seed),
          **factors}, cameras


def render_factors(factors, cameras, image_size: int) -> np.ndarray:
  """Frames uint8 [S, H, W, 3] of a scene given by its factors (e.g. read back from JSON)."""
  from gqn_jax.scenes import renderer  # pylint: disable=g-import-not-at-top
  return renderer.get(get_family(factors["family"]), image_size).render(factors, cameras)


def geom_masks(factors, cameras, image_size: int, geom_names) -> np.ndarray:
  """Where each named geom is seen: bool [len(geom_names), S, H, W] (for tests and figures)."""
  from gqn_jax.scenes import renderer  # pylint: disable=g-import-not-at-top
  scene_renderer = renderer.get(get_family(factors["family"]), image_size)
  ids = scene_renderer.geom_ids(factors, cameras)
  return np.stack([ids == scene_renderer.geom_id(name) for name in geom_names])


def render_scene(name: str, split: str, index: int, image_size: int, seed: int):
  """Renders one scene: (frames uint8 [S, H, W, 3], cameras float32 [S, 5], factors dict)."""
  check_arguments(name, split, index, seed, image_size)
  factors, cameras = sample_scene(name, split, index, seed)
  frames = render_factors(factors, cameras, int(image_size))
  return frames, cameras, {**factors, "image_size": int(image_size)}


def encode_jpeg(frame: np.ndarray) -> bytes:
  """One uint8 [H, W, 3] frame -> JPEG bytes."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  Image.fromarray(frame).save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
  return buffer.getvalue()


def scene_jpegs(name: str, split: str, index: int, image_size: int, seed: int):
  """One scene as the released format stores it: (S JPEG strings, cameras [S, 5], factors)."""
  frames, cameras, factors = render_scene(name, split, index, image_size, seed)
  return [encode_jpeg(frame) for frame in frames], cameras, factors
