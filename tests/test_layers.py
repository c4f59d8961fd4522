"""The generator's array building blocks against direct definitions."""

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np
import pytest

from gqn_jax import layers


def _conv(x, kernel):
  return lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("backend", ["xla", "explicit_vjp", "im2col"])
def test_conv_backends_agree_in_value_and_gradient(backend, key):
  k = jax.random.split(key, 3)
  x = jax.random.normal(k[0], (2, 6, 6, 4))
  kernel = jax.random.normal(k[1], (5, 5, 4, 3))
  weights = jax.random.normal(k[2], (2, 6, 6, 3))
  f = lambda x, w: jnp.sum(weights * layers.conv2d(x, w, backend))
  g = lambda x, w: jnp.sum(weights * _conv(x, w))
  np.testing.assert_allclose(f(x, kernel), g(x, kernel), rtol=1e-4)
  for a, b in zip(jax.grad(f, (0, 1))(x, kernel), jax.grad(g, (0, 1))(x, kernel)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_conv_of_constant_equals_conv_of_broadcast(key):
  k = jax.random.split(key, 2)
  values = jax.random.normal(k[0], (2, 5))
  kernels = jax.random.normal(k[1], (3, 5, 5, 5, 4))
  grid = 7
  broadcast = jnp.broadcast_to(values[:, None, None, :], (2, grid, grid, 5))
  np.testing.assert_allclose(layers.conv2d_of_constant(values, kernels, grid),
                             layers.conv2d_stacked(broadcast, kernels), rtol=1e-4, atol=1e-4)


def test_conv_stacked_equals_separate_convs(key):
  k = jax.random.split(key, 2)
  x = jax.random.normal(k[0], (2, 6, 6, 3))
  kernels = jax.random.normal(k[1], (4, 3, 3, 3, 5))
  stacked = layers.conv2d_stacked(x, kernels)
  for l in range(4):
    np.testing.assert_allclose(stacked[l], _conv(x, kernels[l]), rtol=1e-4, atol=1e-4)


def test_patch_convs_equal_strided_and_transposed_convs(key):
  k = jax.random.split(key, 4)
  x = jax.random.normal(k[0], (2, 8, 8, 3))
  kernel = jax.random.normal(k[1], (4, 4, 3, 5))
  bias = jax.random.normal(k[2], (5,))
  strided = lax.conv_general_dilated(x, kernel, (4, 4), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias
  np.testing.assert_allclose(layers.space_to_depth_conv(x, kernel, bias), strided,
                             rtol=1e-5, atol=1e-5)
  # The transposed conv is the adjoint of the strided one: <up(h), y> == <h, down(y)>.
  h = jax.random.normal(k[3], (2, 2, 2, 5))
  up_kernel = kernel.swapaxes(2, 3)  # [4, 4, 5, 3]
  up = layers.depth_to_space_conv(h, up_kernel, jnp.zeros(3))
  down = layers.space_to_depth_conv(x, kernel, jnp.zeros(5))
  np.testing.assert_allclose(jnp.vdot(up, x), jnp.vdot(h, down), rtol=1e-4)


def test_composed_downsample_conv_equals_downsample_then_conv(key):
  """The query image's path: strided 4x4 conv, then L 'same' convs == one composed conv."""
  k = jax.random.split(key, 4)
  image = jax.random.normal(k[0], (2, 24, 24, 3))
  down_kernel = jax.random.normal(k[1], (4, 4, 3, 64)) * 0.1
  down_bias = jax.random.normal(k[2], (64,))
  kernels = jax.random.normal(k[3], (3, 5, 5, 64, 8)) * 0.1
  two_step = lambda *a: layers.conv2d_stacked(layers.space_to_depth_conv(a[0], a[1], a[2]), a[3])
  composed = lambda *a: layers.strided_then_stacked_conv(*a, grid_size=6)
  args = (image, down_kernel, down_bias, kernels)
  np.testing.assert_allclose(composed(*args), two_step(*args), rtol=1e-4, atol=1e-4)
  loss = lambda f: lambda *a: jnp.sum(jnp.sin(f(*a)))
  for a, b in zip(jax.grad(loss(composed), (1, 2, 3))(*args),
                  jax.grad(loss(two_step), (1, 2, 3))(*args)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)


def test_lstm_update_closed_form():
  gates = jnp.array([[0.0, 100.0, -100.0, 0.5]])  # input, forget, output, candidate
  hidden, cell = layers.lstm_update(gates, jnp.array([[2.0]]))
  # forget gate ~1 keeps the cell, input gate 1/2 adds tanh(0.5)/2, output gate ~0.
  np.testing.assert_allclose(cell, [[2.0 + 0.5 * np.tanh(0.5)]], rtol=1e-6)
  np.testing.assert_allclose(hidden, [[0.0]], atol=1e-6)
