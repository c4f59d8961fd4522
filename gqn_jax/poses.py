"""Camera records -> the 7-D pose the networks see.

The released data stores 5 floats per frame: x, y, z, yaw, pitch (radians). DeepMind's reader
turns them into ``(x, y, z, sin(yaw), cos(yaw), sin(pitch), cos(pitch))``; the paper's text and
the PyTorch reimplementations put cos before sin. Both orders are supported here, and this is the
only place either is written down, so weights trained with one order can be mapped to the other
with :func:`pose_permutation`.
"""

from typing import Literal

import numpy as np

PoseOrder = Literal["sin_cos", "cos_sin"]
POSE_ORDERS = ("sin_cos", "cos_sin")
CAMERA_DIM = 5
POSE_DIM = 7


def camera_to_pose(cameras, order: PoseOrder = "sin_cos"):
  """Maps [..., 5] camera records (x, y, z, yaw, pitch) to [..., 7] poses.

  Works on NumPy and JAX arrays alike (it uses the array's own namespace).
  """
  if order not in POSE_ORDERS:
    raise ValueError(f"pose order must be one of {POSE_ORDERS}, got {order!r}")
  if cameras.shape[-1] != CAMERA_DIM:
    raise ValueError(
        f"camera records have {CAMERA_DIM} values (x, y, z, yaw, pitch), got shape "
        f"{tuple(cameras.shape)}")
  xp = _namespace(cameras)
  position, yaw, pitch = cameras[..., :3], cameras[..., 3:4], cameras[..., 4:5]
  if order == "sin_cos":
    angles = [xp.sin(yaw), xp.cos(yaw), xp.sin(pitch), xp.cos(pitch)]
  else:
    angles = [xp.cos(yaw), xp.sin(yaw), xp.cos(pitch), xp.sin(pitch)]
  return xp.concatenate([position, *angles], axis=-1)


def pose_permutation(source: PoseOrder, target: PoseOrder) -> np.ndarray:
  """Index array p with pose_target = pose_source[..., p].

  A weight matrix whose input rows are pose channels in ``source`` order becomes one for
  ``target`` order by ``weights[..., p, :]`` on the pose rows.
  """
  for order in (source, target):
    if order not in POSE_ORDERS:
      raise ValueError(f"pose order must be one of {POSE_ORDERS}, got {order!r}")
  if source == target:
    return np.arange(POSE_DIM)
  # Both orders keep x, y, z first and swap each (sin, cos) pair.
  return np.array([0, 1, 2, 4, 3, 6, 5])


def _namespace(array):
  if isinstance(array, np.ndarray):
    return np
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  return jnp
