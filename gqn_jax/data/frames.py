"""Stored JPEG frames -> uint8 images of the configured size, without TensorFlow.

Frames of another size (84 px mazes, 128 px rooms with object rotations, or any frame when the
model runs at 32 px) are resized with PIL's bilinear filter. When shrinking, PIL widens the
triangle filter by the scale factor, so each output pixel averages the input pixels it covers
instead of sampling four of them; this is bilinear with antialiasing, the same filter as
``jax.image.resize(..., method="linear", antialias=True)``.
"""

import io

import numpy as np
from PIL import Image

from gqn_jax.released_format import RecordError


def decode_frame(jpeg: bytes, size: int, where: str) -> np.ndarray:
  """One JPEG -> uint8 [size, size, 3]; RecordError naming ``where`` if it does not decode."""
  try:
    with Image.open(io.BytesIO(jpeg)) as image:
      if image.mode != "RGB":
        raise RecordError(f"{where}: {image.mode} image, expected RGB")
      if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
      return np.asarray(image)
  except (OSError, SyntaxError, ValueError) as error:
    if isinstance(error, RecordError):
      raise
    raise RecordError(f"{where}: not a decodable JPEG ({type(error).__name__}: {error})") from None
