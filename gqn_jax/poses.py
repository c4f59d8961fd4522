"""Camera records -> the 7-D pose the networks see.

The released data stores 5 floats per frame: x, y, z, yaw, pitch (radians). DeepMind's reader
turns them into ``(x, y, z, sin(yaw), cos(yaw), sin(pitch), cos(pitch))``; the paper's text and
the PyTorch reimplementations put cos before sin. Both orders are supported here, and this is the
only place either is written down, so weights trained with one order can be mapped to the other
with :func:`pose_permutation`.
"""

import math
from typing import Literal

import numpy as np

PoseOrder = Literal["sin_cos", "cos_sin"]
POSE_ORDERS = ("sin_cos", "cos_sin")
CAMERA_DIM = 5
POSE_DIM = 7
RAY_DIM = 6  # a grid cell's viewing ray: its world direction and its moment.
# The generated scenes' vertical field of view, in degrees (gqn_jax/scenes/camera.py writes the
# camera convention down; the released data publishes none).
FIELD_OF_VIEW_DEGREES = 50.0


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


def ray_map(pose, grid: int, order: PoseOrder = "sin_cos",
            field_of_view_degrees: float = FIELD_OF_VIEW_DEGREES):
  """The viewing ray through each cell of a grid laid over the image: [N, 7] -> [N, g, g, 6].

  Channels: the ray's unit world direction d, then its moment o x d (o the camera's position),
  the Pluecker coordinates of the line the cell sees. A broadcast pose tells every cell the same
  thing, so a convolution must find where on the image it is from the zero padding alone; the
  ray says which way in the world each cell looks. The camera convention is
  gqn_jax/scenes/camera.py's (pixel_rays at the grid's resolution).
  """
  if pose.shape[-1] != POSE_DIM:
    raise ValueError(f"poses have {POSE_DIM} values, got shape {tuple(pose.shape)}")
  xp = _namespace(pose)
  position = pose[:, None, None, :3]
  if order == "sin_cos":
    sin_yaw, cos_yaw, sin_pitch, cos_pitch = (pose[:, None, None, i:i + 1] for i in range(3, 7))
  else:
    cos_yaw, sin_yaw, cos_pitch, sin_pitch = (pose[:, None, None, i:i + 1] for i in range(3, 7))
  zero = xp.zeros_like(sin_yaw)
  ahead = xp.concatenate([cos_pitch * cos_yaw, cos_pitch * sin_yaw, sin_pitch], axis=-1)
  right = xp.concatenate([sin_yaw, -cos_yaw, zero], axis=-1)
  up = xp.concatenate([-cos_yaw * sin_pitch, -sin_yaw * sin_pitch, cos_pitch], axis=-1)
  # Cell centres' offsets from the image centre over the focal length, in [-tan, tan].
  half_width = math.tan(math.radians(field_of_view_degrees) / 2)
  offsets = ((2 * np.arange(grid) + 1) / grid - 1) * half_width
  across = xp.asarray(offsets.astype(np.float32))[None, None, :, None]  # columns: to the right
  down = xp.asarray(offsets.astype(np.float32))[None, :, None, None]    # rows: downwards
  rays = ahead + across * right - down * up                            # [N, g, g, 3]
  # The floor keeps the all-zero poses of padded context views finite (their rays are 0): a
  # NaN there is masked out of r but would still reach the gradients.
  rays = rays / xp.maximum(xp.sqrt(xp.sum(rays * rays, axis=-1, keepdims=True)), 1e-6)
  return xp.concatenate([rays, xp.cross(position, rays)], axis=-1).astype(pose.dtype)


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
