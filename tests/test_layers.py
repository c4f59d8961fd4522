"""The generator's array building blocks against direct definitions."""

import re

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np
import pytest

from gqn_jax import cpu_kernels
from gqn_jax import layers

F32 = layers.choose("auto", jnp.float32, jax.default_backend())
BF16 = layers.choose("auto", jnp.bfloat16, jax.default_backend())


def _choice(backend, dtype=jnp.float32):
  return layers.choose(backend, dtype, jax.default_backend())


def _conv(x, kernel):
  return lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("backend", ["xla", "explicit_vjp", "im2col"])
def test_conv_backends_agree_in_value_and_gradient(backend, key):
  k = jax.random.split(key, 3)
  x = jax.random.normal(k[0], (2, 6, 6, 4))
  kernel = jax.random.normal(k[1], (5, 5, 4, 3))
  weights = jax.random.normal(k[2], (2, 6, 6, 3))
  f = lambda x, w: jnp.sum(weights * layers.conv2d(x, w, _choice(backend)))
  g = lambda x, w: jnp.sum(weights * _conv(x, w))
  np.testing.assert_allclose(f(x, kernel), g(x, kernel), rtol=1e-4)
  for a, b in zip(jax.grad(f, (0, 1))(x, kernel), jax.grad(g, (0, 1))(x, kernel)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_image_patches_gradient_is_the_adjoint_of_taking_patches(key):
  """<patches(x), g> = <x, patches^T(g)>: the custom backward pass (col2im) is the transpose of
  the forward map, edges and zero padding included."""
  kx, kg = jax.random.split(key)
  x = jax.random.normal(kx, (2, 6, 7, 3))
  g = jax.random.normal(kg, (2, 6, 7, 5 * 5 * 3))
  patches, vjp = jax.vjp(lambda x: cpu_kernels.image_patches(x, 5), x)
  np.testing.assert_allclose(jnp.vdot(patches, g), jnp.vdot(x, vjp(g)[0]), rtol=1e-5)
  reference = jax.linear_transpose(lambda x: cpu_kernels.image_patches.fun(x, 5), x)(g)[0]
  np.testing.assert_allclose(vjp(g)[0], reference, rtol=1e-5, atol=1e-5)


def test_image_patches_gradient_rounds_bfloat16_once(key):
  """In bfloat16 the k*k contributions to each pixel are summed in float32 and rounded once,
  so the result is float32's sum rounded to bfloat16, exactly."""
  kx, kg = jax.random.split(key)
  x = jax.random.normal(kx, (2, 6, 6, 4), jnp.bfloat16)
  g = jax.random.normal(kg, (2, 6, 6, 25 * 4), jnp.bfloat16)
  ours = jax.vjp(lambda x: cpu_kernels.image_patches(x, 5), x)[1](g)[0]
  exact = jax.vjp(lambda x: cpu_kernels.image_patches(x, 5), x.astype(jnp.float32))[1](
      g.astype(jnp.float32))[0]
  assert ours.dtype == jnp.bfloat16
  np.testing.assert_array_equal(ours, exact.astype(jnp.bfloat16))


def test_conv_of_constant_equals_conv_of_broadcast(key):
  k = jax.random.split(key, 2)
  values = jax.random.normal(k[0], (2, 5))
  kernels = jax.random.normal(k[1], (3, 5, 5, 5, 4))
  grid = 7
  broadcast = jnp.broadcast_to(values[:, None, None, :], (2, grid, grid, 5))
  np.testing.assert_allclose(layers.conv2d_of_constant(values, kernels, grid),
                             layers.conv2d_stacked(broadcast, kernels, F32), rtol=1e-4, atol=1e-4)


def test_conv_stacked_equals_separate_convs(key):
  k = jax.random.split(key, 2)
  x = jax.random.normal(k[0], (2, 6, 6, 3))
  kernels = jax.random.normal(k[1], (4, 3, 3, 3, 5))
  stacked = layers.conv2d_stacked(x, kernels, F32)
  for l in range(4):
    np.testing.assert_allclose(stacked[l], _conv(x, kernels[l]), rtol=1e-4, atol=1e-4)


def test_patch_convs_equal_strided_and_transposed_convs(key):
  k = jax.random.split(key, 4)
  x = jax.random.normal(k[0], (2, 8, 8, 3))
  kernel = jax.random.normal(k[1], (4, 4, 3, 5))
  bias = jax.random.normal(k[2], (5,))
  strided = lax.conv_general_dilated(x, kernel, (4, 4), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias
  np.testing.assert_allclose(layers.space_to_depth_conv(x, kernel, bias, F32), strided,
                             rtol=1e-5, atol=1e-5)
  # The transposed conv is the adjoint of the strided one: <up(h), y> == <h, down(y)>.
  h = jax.random.normal(k[3], (2, 2, 2, 5))
  up_kernel = kernel.swapaxes(2, 3)  # [4, 4, 5, 3]
  up = layers.depth_to_space_conv(h, up_kernel, jnp.zeros(3))
  down = layers.space_to_depth_conv(x, kernel, jnp.zeros(5), F32)
  np.testing.assert_allclose(jnp.vdot(up, x), jnp.vdot(h, down), rtol=1e-4)


def test_composed_downsample_conv_equals_downsample_then_conv(key):
  """The query image's path: strided 4x4 conv, then L 'same' convs == one composed conv."""
  k = jax.random.split(key, 4)
  image = jax.random.normal(k[0], (2, 24, 24, 3))
  down_kernel = jax.random.normal(k[1], (4, 4, 3, 64)) * 0.1
  down_bias = jax.random.normal(k[2], (64,))
  kernels = jax.random.normal(k[3], (3, 5, 5, 64, 8)) * 0.1
  two_step = lambda *a: layers.conv2d_stacked(layers.space_to_depth_conv(a[0], a[1], a[2], F32),
                                              a[3], F32)
  composed = lambda *a: layers.strided_then_stacked_conv(*a, grid_size=6, choice=F32)
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


def _bf16(*arrays):
  return [a.astype(jnp.bfloat16) for a in arrays]


@pytest.mark.parametrize("inner, outer", [(7, 3), (3, 7), (40, 30)],
                         ids=["N<K", "N>K", "K*N>M*(K+N)"])
def test_bfloat16_matmul_gradients_equal_autodiff_of_the_same_dot(inner, outer, key):
  """The custom backward pass computes what autodiff of the float32-accumulating dot would,
  for both ways it orders each gradient's dot (M = 10 rows here; the last case transposes the
  output gradient rather than the kernel for the input gradient)."""
  k = jax.random.split(key, 3)
  a, b = _bf16(jax.random.normal(k[0], (2, 5, inner)), jax.random.normal(k[1], (inner, outer)))
  weights = jax.random.normal(k[2], (2, 5, outer))
  plain = lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32).astype(a.dtype)
  loss = lambda mm: lambda a, b: jnp.sum(weights * mm(a, b).astype(jnp.float32))
  np.testing.assert_allclose(cpu_kernels.bf16_matmul(a, b).astype(np.float32),
                             plain(a, b).astype(np.float32), rtol=1e-2, atol=1e-2)
  for ours, reference in zip(jax.grad(loss(cpu_kernels.bf16_matmul), (0, 1))(a, b),
                             jax.grad(loss(plain), (0, 1))(a, b)):
    assert ours.dtype == jnp.bfloat16
    np.testing.assert_allclose(ours.astype(np.float32), reference.astype(np.float32),
                               rtol=1e-2, atol=1e-2)


def _dot_operand_dtypes(hlo_text):
  """Operand dtypes of every dot in compiled HLO text, fused or not."""
  dtypes = dict(re.findall(r"%([\w.]+) = (\w+)\[", hlo_text))            # instructions
  dtypes.update(re.findall(r"(?<![%\w.])([\w.]+): (\w+)\[", hlo_text))   # fusion parameters
  dots = re.findall(r"= \w+\[[\d,]*\]\{[\d,]*\} dot\(%([\w.]+), %([\w.]+)\)", hlo_text)
  return [(dtypes[lhs], dtypes[rhs]) for lhs, rhs in dots]


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="about XLA's CPU backend")
def test_bfloat16_matmul_and_conv_run_every_dot_in_bfloat16_on_the_cpu(key):
  """The point of the bfloat16 route: XLA's CPU backend upcasts a dot whose operands are not in
  canonical row-major form to float32, so a plain autodiff backward pass would run at float32
  speed. Forward and backward, every dot must keep bfloat16 operands."""
  k = jax.random.split(key, 4)
  x, kernel = _bf16(jax.random.normal(k[0], (4, 8, 8, 16)), jax.random.normal(k[1], (5, 5, 16, 32)))
  a, b = _bf16(jax.random.normal(k[2], (256, 96)), jax.random.normal(k[3], (96, 64)))
  squares = lambda y: jnp.sum(y.astype(jnp.float32) ** 2)
  # a[:8]: few rows against a large kernel, the other order of the input gradient's dot.
  step = lambda x, kernel, a, b: (squares(layers.conv2d(x, kernel, BF16))
                                  + squares(layers.matmul(a, b, BF16))
                                  + squares(layers.matmul(a[:8], b, BF16)))
  hlo = jax.jit(jax.grad(step, (0, 1, 2, 3))).lower(x, kernel, a, b).compile().as_text()
  dtypes = _dot_operand_dtypes(hlo)
  assert len(dtypes) >= 9, hlo  # forward, input and weight gradients: conv and both matmuls
  assert all(pair == ("bf16", "bf16") for pair in dtypes), dtypes


@pytest.mark.parametrize("backend", ["auto", "im2col"])
def test_bfloat16_conv_stays_close_to_float32_in_value_and_gradient(backend, key):
  k = jax.random.split(key, 3)
  x = jax.random.normal(k[0], (2, 6, 6, 4))
  kernel = jax.random.normal(k[1], (5, 5, 4, 3))
  weights = jax.random.normal(k[2], (2, 6, 6, 3))
  f = lambda x, w: jnp.sum(weights * layers.conv2d(x.astype(jnp.bfloat16), w,
                                                       _choice(backend, jnp.bfloat16)))
  g = lambda x, w: jnp.sum(weights * _conv(x, w))
  scale = float(jnp.sum(jnp.abs(weights * _conv(x, kernel))))
  np.testing.assert_allclose(f(x, kernel), g(x, kernel), atol=1e-2 * scale)
  for a, b in zip(jax.grad(f, (0, 1))(x, kernel), jax.grad(g, (0, 1))(x, kernel)):
    np.testing.assert_allclose(a, b, rtol=2e-2, atol=2e-2 * float(jnp.max(jnp.abs(b))))


def test_auto_backend_picks_the_patch_matmul_and_bfloat16_dots_on_the_cpu_only():
  assert layers.choose("auto", jnp.float32, "cpu") == ("im2col", False)
  assert layers.choose("auto", jnp.bfloat16, "cpu") == ("im2col", True)
  assert layers.choose("auto", jnp.bfloat16, "gpu") == ("xla", False)
  assert layers.choose("xla", jnp.bfloat16, "cpu") == ("xla", True)
  with pytest.raises(ValueError, match="unknown conv backend 'cudnn'"):
    layers.choose("cudnn", jnp.float32, "cpu")
