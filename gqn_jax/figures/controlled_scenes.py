"""Rooms that differ in exactly one chosen factor, for scene algebra.

The scene generator draws every factor at random; here a generated room (its walls, floor and
lights, from ``scenes.scene.sample_scene``) is kept as the background and its objects are
replaced by one object of a chosen shape and colour in the middle of the room. Every scene of an
analogy shares the background and the cameras (on the rooms' ring, facing the object), so two
scenes differ only where the chosen factor says. Rendering goes through the render workers
(``scenes.worker``), never this process.
"""

import colorsys

import numpy as np

from gqn_jax.data import frames as frames_lib
from gqn_jax.scenes import camera
from gqn_jax.scenes import get_family
from gqn_jax.scenes import rooms
from gqn_jax.scenes import scene
from gqn_jax.scenes import worker

# Hue (degrees) of each named object colour; saturation and value fixed, well inside the range
# the generator draws object colours from (palette.random_colour).
COLOURS = {"red": 0, "yellow": 55, "green": 120, "cyan": 185, "blue": 225, "magenta": 300}
SATURATION, VALUE = 0.85, 0.9
FRAME_SIZE = 64  # rendered at the generated datasets' frame size, then resized like the data.


def colour_rgb(name: str) -> list[float]:
  if name not in COLOURS:
    raise ValueError(f"unknown colour {name!r}; known: {', '.join(COLOURS)}")
  return [float(v) for v in colorsys.hsv_to_rgb(COLOURS[name] / 360.0, SATURATION, VALUE)]


def check_family(name: str):
  """The rooms family ``name``; a ValueError for families without objects to vary."""
  family = get_family(name)
  if not isinstance(family, rooms.Rooms):
    raise ValueError(f"controlled scenes vary a room's object; {name!r} is not a rooms family "
                     f"(scene algebra needs a model trained on rooms)")
  return family


def room(family_name: str, shape: str, colour: str, *, background: int, seed: int = 0) -> dict:
  """Factors of generated test room ``background`` with one ``colour`` ``shape`` in the middle."""
  check_family(family_name)
  if shape not in rooms.SHAPES:
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(rooms.SHAPES)}")
  factors, _ = scene.sample_scene(family_name, "test", background, seed)
  factors["objects"] = [{"shape": shape, "rgb": colour_rgb(colour), "position": [0.0, 0.0, 0.0],
                         "yaw": 0.0}]
  factors["controlled"] = {"shape": shape, "colour": colour}
  return factors


def ring(count: int, seed: int) -> np.ndarray:
  """``count`` camera records [count, 5] at random angles on the rooms' ring, facing its centre."""
  rng = np.random.default_rng([seed, count])
  return camera.on_ring(rng, count, rooms.RING_RADIUS, rooms.RING_HEIGHT, rooms.RING_TARGET)


def render(factors: dict, cameras, image_size: int) -> np.ndarray:
  """float32 [S, image_size, image_size, 3] in [0, 1]: the scene rendered, resized like the data."""
  frames = worker.call("render_factors", factors, np.asarray(cameras, np.float32), FRAME_SIZE)
  images = frames_lib.resize(frames.astype(np.float32) / 255.0, image_size)
  return np.clip(images, 0.0, 1.0)
