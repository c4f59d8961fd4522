"""The camera convention (gqn_jax/scenes/camera.py) holds in the rendered images.

Views are checked with MuJoCo's segmentation rendering: the pixels where one object's geom is
seen, so lighting and colours cannot fool the test. Rendering runs in a render worker process.
"""

import numpy as np
import pytest

from gqn_jax.scenes import camera
from gqn_jax.scenes import scene
from gqn_jax.scenes import worker

SIZE = 64
SPHERE = "object0_sphere"
SPHERE_LIFT = 0.5  # a sphere object's centre is 0.5 above its position (it stands on z = 0).


def _room_with_sphere(centre, name="rooms_free_camera_no_object_rotations"):
  """Factors of a room holding one sphere centred at ``centre``."""
  factors, _ = scene.sample_scene(name, "train", 0, seed=0)
  position = [float(centre[0]), float(centre[1]), float(centre[2]) - SPHERE_LIFT]
  return {**factors, "objects": [
      {"shape": "sphere", "rgb": [0.2, 0.4, 0.9], "position": position, "yaw": 0.0}]}


def _sphere_centroids(factors, cameras):
  """(column, row) of the centre of the sphere's pixels in each frame [S, 2]; NaN if unseen."""
  masks = worker.call("geom_masks", factors, np.asarray(cameras, np.float32), SIZE, [SPHERE])[0]
  rows, columns = np.mgrid[:SIZE, :SIZE] + 0.5  # pixel centres.
  area = masks.sum(axis=(1, 2)).astype(float)
  with np.errstate(invalid="ignore"):
    return np.stack([(masks * columns).sum(axis=(1, 2)) / area,
                     (masks * rows).sum(axis=(1, 2)) / area], axis=-1)


def test_forward_and_look_at_are_inverse():
  rng = np.random.default_rng(0)
  yaw, pitch = rng.uniform(-np.pi, np.pi, 50), rng.uniform(-1.5, 1.5, 50)
  position = rng.normal(size=(50, 3))
  found_yaw, found_pitch = camera.look_at(position, position + 2.5 * camera.forward(yaw, pitch))
  np.testing.assert_allclose(found_yaw, yaw, atol=1e-9)
  np.testing.assert_allclose(found_pitch, pitch, atol=1e-9)


def test_convention_directions():
  """yaw 0 looks along +x, yaw pi/2 along +y, positive pitch looks up (z is up)."""
  np.testing.assert_allclose(camera.forward(0.0, 0.0), [1, 0, 0], atol=1e-12)
  np.testing.assert_allclose(camera.forward(np.pi / 2, 0.0), [0, 1, 0], atol=1e-12)
  assert camera.forward(0.0, 0.3)[2] > 0
  # Projection: +y is to the left of a camera looking along +x, +z is up in the image.
  centre = camera.project([[3, 0, 0], [3, 1, 0], [3, 0, 1], [-3, 0, 0]], [0, 0, 0, 0, 0], SIZE)
  np.testing.assert_allclose(centre[0], [SIZE / 2, SIZE / 2])
  assert centre[1, 0] < SIZE / 2 and centre[2, 1] < SIZE / 2
  assert np.isnan(centre[3]).all()  # behind the camera


def test_object_at_room_centre_is_centred_on_every_ring_camera():
  factors, cameras = scene.sample_scene("rooms_ring_camera", "train", 3, seed=0)
  # Ring cameras all face RING_TARGET; put the sphere's centre there.
  from gqn_jax.scenes import rooms  # pylint: disable=g-import-not-at-top
  room = _room_with_sphere(rooms.RING_TARGET, name="rooms_ring_camera")
  centroids = _sphere_centroids({**factors, "objects": room["objects"]}, cameras)
  np.testing.assert_allclose(centroids, SIZE / 2, atol=0.25)


def test_left_right_up_appear_where_the_convention_says():
  """An object placed to the camera's left/right/above appears left/right/above the centre."""
  for yaw in (0.0, 2.0, -2.5):
    position = np.array([0.3, -0.2, 1.2])
    ahead = camera.forward(yaw, 0.0)
    left = np.array([-np.sin(yaw), np.cos(yaw), 0.0])
    up = np.array([0.0, 0.0, 1.0])
    record = np.array([[*position, yaw, 0.0]], np.float32)
    placements = {"ahead": position + 2.5 * ahead, "left": position + 2.5 * ahead + 0.8 * left,
                  "right": position + 2.5 * ahead - 0.8 * left,
                  "up": position + 2.5 * ahead + 0.6 * up}
    seen = {where: _sphere_centroids(_room_with_sphere(point), record)[0]
            for where, point in placements.items()}
    column, row = seen["ahead"]
    assert abs(column - SIZE / 2) < 0.5 and abs(row - SIZE / 2) < 0.5, (yaw, seen)
    assert seen["left"][0] < column - 8, (yaw, seen)
    assert seen["right"][0] > column + 8, (yaw, seen)
    assert seen["up"][1] < row - 6, (yaw, seen)


def test_positive_pitch_looks_up():
  position, yaw = np.array([0.0, 0.0, 0.8]), 1.0
  above = position + 2.5 * camera.forward(yaw, 0.35)  # a sphere 0.35 rad above the horizon.
  level, tilted = _sphere_centroids(
      _room_with_sphere(above), np.array([[*position, yaw, 0.0], [*position, yaw, 0.35]]))
  assert level[1] < SIZE / 2 - 8  # seen high in the frame by a level camera ...
  np.testing.assert_allclose(tilted, SIZE / 2, atol=0.5)  # ... and centred when pitched up.


def _analytic_centroid(centre, record, radius=0.5, samples=4):
  """(column, row) centre of where a sphere is seen, by casting camera.pixel_rays at it."""
  rays = camera.pixel_rays(record, SIZE, samples)  # [H * s, W * s, 3]
  offset = np.asarray(centre) - record[:3]
  along = rays @ offset
  hit = (along > 0) & (offset @ offset - along ** 2 < radius ** 2)
  rows, columns = (np.mgrid[:SIZE * samples, :SIZE * samples] + 0.5) / samples
  return np.array([columns[hit].mean(), rows[hit].mean()])


def test_pixel_rays_invert_project():
  record = np.array([0.3, -1.0, 1.1, 2.2, -0.3])
  rays = camera.pixel_rays(record, SIZE)
  points = record[:3] + 3.0 * rays.reshape(-1, 3)
  rows, columns = np.mgrid[:SIZE, :SIZE] + 0.5
  np.testing.assert_allclose(camera.project(points, record, SIZE),
                             np.stack([columns.ravel(), rows.ravel()], -1), atol=1e-9)


@pytest.mark.parametrize("yaw,pitch", [(0.0, 0.0), (1.2, -0.4), (-2.0, 0.25), (3.0, -0.1)])
def test_rendered_positions_match_the_pinhole_model(yaw, pitch):
  """Spheres appear where rays cast by camera.py's model (50 degree field of view) meet them.

  The tolerance is a quarter pixel: a field of view off by one degree moves the off-axis spheres
  here by about half a pixel, a yaw or pitch sign error by many.
  """
  position = np.array([-0.5, 0.4, 1.3])
  record = np.array([[*position, yaw, pitch]], np.float32)
  for dyaw, dpitch in ((0.0, 0.0), (0.35, 0.0), (-0.3, 0.2), (0.2, -0.25)):
    centre = position + 2.6 * camera.forward(yaw + dyaw, pitch + dpitch)
    centre[2] = max(centre[2], 0.6)  # keep the sphere above the floor
    expected = _analytic_centroid(centre, record[0].astype(np.float64))
    seen = _sphere_centroids(_room_with_sphere(centre), record)[0]
    np.testing.assert_allclose(seen, expected, atol=0.25, err_msg=f"{dyaw}, {dpitch}")


def test_hidden_object_geoms_are_never_drawn():
  """Only the placed objects' shapes are visible; the other geoms of each slot stay hidden."""
  from gqn_jax.scenes import rooms  # pylint: disable=g-import-not-at-top
  names = [f"object{slot}_{shape}" for slot in range(rooms.MAX_OBJECTS) for shape in rooms.SHAPES]
  for index in range(4):
    factors, cameras = scene.sample_scene("rooms_ring_camera", "test", index, seed=1)
    masks = worker.call("geom_masks", factors, cameras, SIZE, names)
    placed = {f"object{slot}_{o['shape']}" for slot, o in enumerate(factors["objects"])}
    seen = {name for name, mask in zip(names, masks) if mask.any()}
    assert seen <= placed, (seen, placed)
    assert seen, "no object seen from any ring camera"
