"""The camera convention of generated scenes, and the cameras each family samples.

A camera record is the released format's 5 floats ``(x, y, z, yaw, pitch)``:

* World frame: right-handed, **z is up** (MuJoCo's convention). Rooms have their floor at z = 0
  and their centre at x = y = 0; a Shepard-Metzler object is centred on the origin.
* ``(x, y, z)``: the camera's optical centre, in scene units (a room is 7 x 7 units).
* ``yaw`` (radians, in [-pi, pi)): heading of the viewing direction in the x-y plane, measured
  counter-clockwise seen from above: yaw = 0 looks along +x, yaw = pi/2 along +y.
* ``pitch`` (radians, in (-pi/2, pi/2)): elevation of the viewing direction; pitch > 0 looks up,
  pitch < 0 looks down.
* No roll: the image's "up" is always the world's up tilted by the pitch. The viewing direction
  is ``forward = (cos(pitch) cos(yaw), cos(pitch) sin(yaw), sin(pitch))``, the image's right
  is ``(sin(yaw), -cos(yaw), 0)`` and its up is ``right x forward``.
* Pinhole projection with a vertical field of view of :data:`FIELD_OF_VIEW_DEGREES` on square
  images (the released data does not publish intrinsics; one follow-up assumes 50 degrees).

:func:`project` writes this down as arithmetic, and the tests check that the rendered images
obey it.
"""

import numpy as np

from gqn_jax.poses import FIELD_OF_VIEW_DEGREES  # also what the networks' pose rays assume.


def forward(yaw, pitch) -> np.ndarray:
  """Unit viewing direction(s) [..., 3] for yaw and pitch in radians."""
  yaw, pitch = np.asarray(yaw, np.float64), np.asarray(pitch, np.float64)
  return np.stack([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)],
                  axis=-1)


def look_at(position, target):
  """(yaw, pitch) in radians of a camera at ``position`` [..., 3] that faces ``target``."""
  direction = np.asarray(target, np.float64) - np.asarray(position, np.float64)
  yaw = np.arctan2(direction[..., 1], direction[..., 0])
  pitch = np.arctan2(direction[..., 2], np.hypot(direction[..., 0], direction[..., 1]))
  return yaw, pitch


def record(position, yaw, pitch) -> np.ndarray:
  """Stacks positions [S, 3] and angles [S] into camera records [S, 5] (float32)."""
  yaw = (np.asarray(yaw, np.float64) + np.pi) % (2 * np.pi) - np.pi  # into [-pi, pi)
  return np.concatenate([np.asarray(position, np.float64), yaw[:, None],
                         np.asarray(pitch, np.float64)[:, None]], axis=1).astype(np.float32)


def facing(positions, target) -> np.ndarray:
  """Camera records [S, 5] for cameras at ``positions`` [S, 3] that all face ``target``."""
  positions = np.asarray(positions, np.float64)
  yaw, pitch = look_at(positions, target)
  return record(positions, yaw, pitch)


def on_ring(rng, count: int, radius: float, height: float, target) -> np.ndarray:
  """``count`` cameras at random angles on a horizontal ring around the z axis, facing target."""
  angle = rng.uniform(-np.pi, np.pi, size=count)
  positions = np.stack([radius * np.cos(angle), radius * np.sin(angle),
                        np.full(count, height)], axis=1)
  return facing(positions, target)


def on_sphere(rng, count: int, radius: float, max_abs_sin_pitch: float) -> np.ndarray:
  """``count`` cameras on a sphere around the origin (uniform over its area), facing it.

  The poles are left out (``|sin(elevation)| <= max_abs_sin_pitch``) so that the camera's up is
  always defined.
  """
  azimuth = rng.uniform(-np.pi, np.pi, size=count)
  elevation = np.arcsin(rng.uniform(-max_abs_sin_pitch, max_abs_sin_pitch, size=count))
  positions = radius * forward(azimuth, elevation)
  return facing(positions, np.zeros(3))


def _axes(yaw, pitch):
  """The camera's (forward, right, up) unit vectors in world coordinates."""
  ahead = forward(yaw, pitch)
  right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
  return ahead, right, np.cross(right, ahead)


def focal_length(image_size: int, field_of_view_degrees: float = FIELD_OF_VIEW_DEGREES):
  """Focal length in pixels of square ``image_size`` frames."""
  return (image_size / 2) / np.tan(np.radians(field_of_view_degrees) / 2)


def pixel_rays(camera, image_size: int, samples: int = 1,
               field_of_view_degrees: float = FIELD_OF_VIEW_DEGREES) -> np.ndarray:
  """Unit world directions [H * samples, W * samples, 3] through a grid of points in each pixel.

  ``samples`` points per pixel side, evenly spread (1: the pixel centres). The inverse of
  :func:`project`.
  """
  camera = np.asarray(camera, np.float64)
  ahead, right, up = _axes(camera[3], camera[4])
  steps = (np.arange(image_size * samples) + 0.5) / samples  # in pixel units from the edge.
  rows, columns = np.meshgrid(steps, steps, indexing="ij")
  focal = focal_length(image_size, field_of_view_degrees)
  rays = (ahead + ((columns - image_size / 2) / focal)[..., None] * right
          - ((rows - image_size / 2) / focal)[..., None] * up)
  return rays / np.linalg.norm(rays, axis=-1, keepdims=True)


def project(points, camera, image_size: int,
            field_of_view_degrees: float = FIELD_OF_VIEW_DEGREES) -> np.ndarray:
  """Pixel coordinates [N, 2] as (column, row) of world ``points`` [N, 3] seen by ``camera``.

  ``camera`` is one record (x, y, z, yaw, pitch). Coordinates are continuous, with (0, 0) the
  top-left corner of the image and pixel (i, j)'s centre at (j + 0.5, i + 0.5). Points behind the
  camera give NaN.
  """
  camera = np.asarray(camera, np.float64)
  ahead, right, up = _axes(camera[3], camera[4])
  offset = np.asarray(points, np.float64) - camera[:3]
  depth = offset @ ahead
  focal = focal_length(image_size, field_of_view_degrees)
  with np.errstate(divide="ignore", invalid="ignore"):
    column = image_size / 2 + focal * (offset @ right) / depth
    row = image_size / 2 - focal * (offset @ up) / depth
  pixels = np.stack([column, row], axis=-1)
  pixels[depth <= 0] = np.nan
  return pixels
