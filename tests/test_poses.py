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
