"""Stored JPEG frames -> images of the configured size, without TensorFlow.

Decoding uses simplejpeg (libjpeg-turbo, straight into a NumPy array, with the GIL
released) when it is installed, else PIL; both run libjpeg-turbo's accurate integer DCT and
fancy upsampling, so they give the same pixels.

Frames of another size (84 px mazes, 128 px rooms with object rotations, or any frame when the
model runs at 32 px) are resized with an antialiased bilinear filter, applied to a whole batch as
two batched matrix products: each output pixel is a triangle-weighted average of the input pixels
under it, the triangle widened by the shrink factor so that downsampling averages rather than
aliases. This is ``jax.image.resize(images, shape, "linear", antialias=True)``, computed in NumPy.
"""

import functools
import io

import numpy as np

from gqn_jax.released_format import RecordError

try:
  import simplejpeg  # pylint: disable=g-import-not-at-top
except ImportError:  # PIL is slower (Python header parsing under the GIL) but equivalent.
  simplejpeg = None


def decode_jpeg(jpeg: bytes, where: str) -> np.ndarray:
  """One JPEG -> uint8 [H, W, 3]; RecordError naming ``where`` if the bytes do not decode."""
  try:
    if simplejpeg is not None:
      return simplejpeg.decode_jpeg(jpeg, colorspace="RGB", fastdct=False, fastupsample=False)
    from PIL import Image  # pylint: disable=g-import-not-at-top
    with Image.open(io.BytesIO(jpeg)) as image:
      if image.format != "JPEG":
        raise RecordError(f"{where}: a {image.format} image, expected JPEG")
      return np.asarray(image.convert("RGB"))
  except (OSError, SyntaxError, ValueError) as error:
    if isinstance(error, RecordError):
      raise
    raise RecordError(f"{where}: not a decodable JPEG ({type(error).__name__}: {error})") from None


@functools.lru_cache(maxsize=32)
def resize_matrix(in_size: int, out_size: int) -> np.ndarray:
  """float32 [out_size, in_size]: row o holds the antialiased bilinear weights of output pixel o.

  The construction of jax.image.scale_and_translate with a triangle kernel.
  """
  scale = out_size / in_size
  kernel_scale = max(1.0 / scale, 1.0)  # widen the filter only when shrinking.
  centers = (np.arange(out_size) + 0.5) / scale - 0.5  # output centers in input coordinates.
  distance = np.abs(centers[:, None] - np.arange(in_size)[None, :]) / kernel_scale
  weights = np.maximum(0.0, 1.0 - distance)
  return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def resize(images: np.ndarray, size: int) -> np.ndarray:
  """float32 [..., H, W, C] -> [..., size, size, C], antialiased bilinear (see the docstring)."""
  height, width = images.shape[-3:-1]
  if (height, width) == (size, size):
    return images
  rows, cols = resize_matrix(height, size), resize_matrix(width, size)
  channels_first = np.moveaxis(images, -1, -3)  # [..., C, H, W]: batched matrix products.
  return np.moveaxis(rows @ channels_first @ cols.T, -3, -1)
