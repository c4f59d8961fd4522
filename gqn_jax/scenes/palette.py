"""Colours and surface patterns of generated scenes.

The rooms dataset names 5 wall textures and 3 floor textures by colour (docs/data.md, "What the
scenes contain"). Here a texture is a named base colour, jittered a little per scene, multiplied
onto one of a few greyscale MuJoCo builtin patterns. The patterns are fixed assets of the model,
so one renderer (and one set of uploaded textures) serves every scene; only material colours
change per scene.
"""

import colorsys

import numpy as np

WALL_COLOURS = {
    "red": (0.78, 0.16, 0.12),
    "green": (0.20, 0.62, 0.24),
    "cerise": (0.87, 0.19, 0.42),
    "orange": (0.96, 0.50, 0.10),
    "yellow": (0.92, 0.80, 0.18),
}
FLOOR_COLOURS = {
    "yellow": (0.86, 0.74, 0.36),
    "white": (0.88, 0.88, 0.86),
    "blue": (0.26, 0.42, 0.78),
}

# Greyscale builtin textures: name -> MJCF <texture> attributes. Material colour tints them.
PATTERNS = {
    "checker": 'builtin="checker" rgb1="1 1 1" rgb2="0.78 0.78 0.78"',
    "grid": 'builtin="flat" rgb1="1 1 1" mark="edge" markrgb="0.7 0.7 0.7"',
    "noise": 'builtin="flat" rgb1="0.95 0.95 0.95" mark="random" markrgb="0.72 0.72 0.72" '
             'random="0.25"',
    "gradient": 'builtin="gradient" rgb1="1 1 1" rgb2="0.72 0.72 0.72"',
}


def jitter(rng, rgb, amount: float) -> list[float]:
  """``rgb`` with each channel moved by up to +-amount, kept in [0, 1]."""
  return [float(v) for v in np.clip(np.asarray(rgb) + rng.uniform(-amount, amount, 3), 0, 1)]


def random_surface(rng, colours, repeats: tuple[float, float]) -> dict:
  """A textured surface: a named colour of ``colours`` (jittered), a pattern, and texture
  repeats per unit length drawn from ``repeats`` (the same along both axes)."""
  name = str(rng.choice(list(colours)))
  repeat = float(rng.uniform(*repeats))
  return {
      "colour": name,
      "pattern": str(rng.choice(list(PATTERNS))),
      "rgb": jitter(rng, colours[name], 0.06),
      "texrepeat": [repeat, repeat],
  }


def random_colour(rng, saturation=(0.55, 1.0), value=(0.55, 1.0)) -> list[float]:
  """A random saturated colour: hue uniform, saturation and value in the given ranges."""
  hue = rng.uniform(0.0, 1.0)
  rgb = colorsys.hsv_to_rgb(hue, rng.uniform(*saturation), rng.uniform(*value))
  return [float(v) for v in rgb]


def texture_xml(name: str, pattern: str, size: int = 64) -> str:
  """An MJCF 2-D ``<texture>`` asset of the named greyscale pattern."""
  return (f'<texture name="{name}" type="2d" width="{size}" height="{size}" '
          f'{PATTERNS[pattern]}/>')
