import numpy as np
import pytest

from gqn_jax import poses


def test_deepmind_order_by_hand():
  camera = np.array([1.0, -2.0, 0.5, np.pi / 6, -np.pi / 3])
  np.testing.assert_allclose(
      poses.camera_to_pose(camera),
      [1.0, -2.0, 0.5, 0.5, np.sqrt(3) / 2, -np.sqrt(3) / 2, 0.5], atol=1e-12)
  np.testing.assert_allclose(
      poses.camera_to_pose(camera, "cos_sin"),
      [1.0, -2.0, 0.5, np.sqrt(3) / 2, 0.5, 0.5, -np.sqrt(3) / 2], atol=1e-12)


def test_permutation_maps_one_order_to_the_other():
  cameras = np.random.default_rng(0).normal(size=(4, 3, 5))
  for source, target in [("sin_cos", "cos_sin"), ("cos_sin", "sin_cos"), ("sin_cos", "sin_cos")]:
    perm = poses.pose_permutation(source, target)
    np.testing.assert_allclose(poses.camera_to_pose(cameras, source)[..., perm],
                               poses.camera_to_pose(cameras, target))


def test_jax_arrays():
  import jax.numpy as jnp
  out = poses.camera_to_pose(jnp.zeros((2, 5)))
  assert out.shape == (2, 7) and float(out[0, 4]) == 1.0


def test_bad_input_names_the_problem():
  with pytest.raises(ValueError, match="5 values"):
    poses.camera_to_pose(np.zeros((3, 4)))
  with pytest.raises(ValueError, match="pose order"):
    poses.camera_to_pose(np.zeros((3, 5)), "yaw_first")


@pytest.mark.parametrize("order", poses.POSE_ORDERS)
def test_ray_map_is_the_cameras_pixel_rays_at_the_grids_resolution(order):
  """Each cell's ray is the one gqn_jax.scenes.camera traces through the centre of that cell
  (the camera convention the generated scenes are rendered with), and its moment is o x d."""
  import jax.numpy as jnp
  from gqn_jax.scenes import camera
  rng = np.random.default_rng(1)
  cameras = np.concatenate([rng.normal(size=(5, 3)), rng.uniform(-np.pi, np.pi, (5, 1)),
                            rng.uniform(-1.3, 1.3, (5, 1))], axis=1).astype(np.float32)
  pose = poses.camera_to_pose(cameras, order)
  for maps in (poses.ray_map(pose, 6, order), np.asarray(poses.ray_map(jnp.asarray(pose), 6,
                                                                        order))):
    assert maps.shape == (5, 6, 6, poses.RAY_DIM)
    for record, cells in zip(cameras, maps):
      directions = camera.pixel_rays(record, 6)
      np.testing.assert_allclose(cells[..., :3], directions, atol=1e-5)
      np.testing.assert_allclose(cells[..., 3:], np.cross(record[:3], directions), atol=1e-5)


def test_ray_map_sees_a_point_where_the_camera_projects_it():
  """A world point seen by the camera lies on the ray of the cell it projects into."""
  from gqn_jax.scenes import camera
  record = np.array([2.0, -1.0, 1.5, 2.2, -0.3], np.float32)
  point = record[:3] + 4.0 * camera.forward(record[3] + 0.2, record[4] - 0.1)
  column, row = camera.project(point[None], record, 8)[0]
  cell = poses.ray_map(poses.camera_to_pose(record[None]), 8)[0, int(row), int(column)]
  to_point = (point - record[:3]) / np.linalg.norm(point - record[:3])
  # Within the cell: the angle to the cell centre's ray is at most half a cell's diagonal.
  assert np.degrees(np.arccos(np.clip(to_point @ cell[:3], -1, 1))) < 50.0 / 8
