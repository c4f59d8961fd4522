"""Kernels for XLA's CPU runtime: convolutions and bfloat16 matmuls with hand-written backward
passes. ``layers`` dispatches to them; the generator chooses them once (``layers.choose``).

Why convolution kernels of our own: on the CPU, XLA lowers a convolution's *gradients* inside a
while loop (the generator's scan) far more slowly than the same gradients outside one
(jax-ml/jax#12868), while the forward convolution runs at full speed. Both kernels here write
the backward pass as operations XLA handles well in a loop body:

* ``explicit_vjp_conv`` keeps XLA's forward convolution; its input gradient is another forward
  convolution (flipped, transposed kernel), its weight gradient one matmul over image patches.
* ``im2col_conv`` is a matmul over image patches both ways; the patches are rebuilt in the
  backward pass, and their gradients are added back into pixels in float32
  (``image_patches``' own backward pass). ``experiments/benchmark_convs.py`` times the three
  backends; 'auto' picks this one on the CPU.

Why bfloat16 matmuls of our own: XLA's CPU backend has a fast bfloat16 matmul only when it
accumulates into a float32 output from row-major operands; a bfloat16-output dot, or one over a
transposed operand, runs in float32 (operands upcast), and a bfloat16 convolution is no faster
than a float32 one (``experiments/benchmark_precision.py``). ``bf16_matmul`` accumulates in
float32 and keeps every dot of its forward and backward pass in that native form.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def xla_conv(x, kernel):
  """Stride-1 'same' convolution as XLA's own op (x NHWC, kernel HWIO)."""
  return lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_DIMENSIONS)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def image_patches(x, kernel_size: int):
  """[N, H, W, C] -> [N, H, W, k*k*C]: each pixel's k x k neighbourhood ('same' zero padding).

  The last axis is ordered (dy, dx, c), matching a flattened HWIO kernel's input axes.
  """
  pad = kernel_size // 2
  height, width = x.shape[1], x.shape[2]
  padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  shifted = [padded[:, dy:dy + height, dx:dx + width, :]
             for dy in range(kernel_size) for dx in range(kernel_size)]
  return jnp.concatenate(shifted, axis=-1)


def _image_patches_fwd(x, kernel_size):
  return image_patches(x, kernel_size), None


def _image_patches_bwd(kernel_size, _, grad_patches):
  """Adds each pixel's k*k patch gradients back where they came from (col2im), in float32.

  Autodiff's transpose of the forward pass sums k*k zero-padded copies in the patches' dtype:
  in bfloat16 the CPU rounds after each of the 25 additions, and the padded sums ran slower than
  these in-place slice additions in float32 too (the im2col rows of
  ``experiments/benchmark_convs.py``).
  """
  n, height, width, depth = grad_patches.shape
  pad, taps = kernel_size // 2, kernel_size * kernel_size
  per_tap = grad_patches.astype(jnp.float32).reshape(n, height, width, taps, depth // taps)
  total = jnp.zeros((n, height + 2 * pad, width + 2 * pad, depth // taps), jnp.float32)
  for tap in range(taps):
    dy, dx = divmod(tap, kernel_size)
    total = total.at[:, dy:dy + height, dx:dx + width, :].add(per_tap[:, :, :, tap])
  return (total[:, pad:pad + height, pad:pad + width, :].astype(grad_patches.dtype),)


image_patches.defvjp(_image_patches_fwd, _image_patches_bwd)


def accumulating_dot(a, b):
  """a [M, K] @ b [K, N] accumulated in float32, the result in a's dtype."""
  return jnp.dot(a, b, preferred_element_type=jnp.float32).astype(a.dtype)


def row_major(x):
  """x, stored row-major: flattened (one layout only) across an optimization barrier.

  XLA's CPU backend only runs a bfloat16 dot in bfloat16 when its operands and result are
  row-major with the contraction on lhs's last axis and rhs's first. Otherwise it upcasts the
  operands to float32 (running at float32 speed; `make bench-bf16`,
  experiments/results/precision_ops.json) or, for some shapes, fails ("Unsupported element type
  for DotThunk"). A transpose next to a dot is otherwise folded into the dot's dimensions or
  into a column-major layout.
  """
  return lax.optimization_barrier(x.reshape(-1)).reshape(x.shape)


def transpose_in_memory(x):
  """x.T, stored row-major (see ``row_major``)."""
  return row_major(x.T)


@jax.custom_vjp
def bf16_matmul(a, b):
  """a [..., K] @ b [K, N], both bfloat16, accumulated in float32, forward and backward."""
  return accumulating_dot(a.reshape(-1, a.shape[-1]), b).reshape(*a.shape[:-1], b.shape[-1])


def _bf16_matmul_fwd(a, b):
  return bf16_matmul(a, b), (a, b)


def _bf16_matmul_bwd(residuals, grad_out):
  a, b = residuals
  flat_a = a.reshape(-1, a.shape[-1])                               # [M, K]
  flat_grad = grad_out.reshape(-1, grad_out.shape[-1]).astype(a.dtype)  # [M, N]
  (m, k), n = flat_a.shape, flat_grad.shape[1]
  # Each gradient contracts an axis that is not in place for a native dot, so something must be
  # transposed in memory; of the two ways, move fewer elements. grad_a [M, K] = grad @ b.T: b
  # [K, N], or the gradient [M, N] and then the [K, M] result (the tower r's merged kernel is
  # far larger than the gradient it meets).
  if m * n + k * m < k * n:
    grad_a = row_major(accumulating_dot(b, transpose_in_memory(flat_grad))).T
  else:
    grad_a = accumulating_dot(flat_grad, transpose_in_memory(b))
  grad_a = grad_a.reshape(a.shape)
  # grad_b [K, N] = a.T @ grad contracts over M, the leading axis of both: a [M, K], or the
  # gradient [M, N] and then the [N, K] result.
  if m * n + n * k < m * k:
    grad_b = row_major(accumulating_dot(transpose_in_memory(flat_grad), flat_a)).T
  else:
    grad_b = accumulating_dot(transpose_in_memory(flat_a), flat_grad)
  return grad_a, grad_b.astype(b.dtype)


bf16_matmul.defvjp(_bf16_matmul_fwd, _bf16_matmul_bwd)


def matmul(a, b, bf16_dots: bool):
  """a [..., K] @ b [K, N] in a's dtype (b is cast to it); through ``bf16_matmul`` when
  ``bf16_dots`` and a is bfloat16."""
  b = b.astype(a.dtype)
  return bf16_matmul(a, b) if bf16_dots and a.dtype == jnp.bfloat16 else a @ b


def im2col_conv(x, kernel, bf16_dots: bool = False):
  """Stride-1 'same' convolution as one matmul over image patches."""
  k, _, c_in, c_out = kernel.shape
  return matmul(image_patches(x, k), kernel.reshape(k * k * c_in, c_out), bf16_dots)


@jax.custom_vjp
def explicit_vjp_conv(x, kernel):
  """XLA's forward convolution with the backward pass written as a conv and a patch matmul."""
  return xla_conv(x, kernel)


def _explicit_vjp_conv_fwd(x, kernel):
  return xla_conv(x, kernel), (x, kernel)


def _explicit_vjp_conv_bwd(residuals, grad_out):
  x, kernel = residuals
  k, _, c_in, c_out = kernel.shape
  # The input gradient of a stride-1 'same' convolution is a 'same' convolution of the output
  # gradient with the spatially flipped kernel, input and output channels swapped.
  flipped = jnp.flip(kernel, axis=(0, 1)).swapaxes(2, 3)
  grad_x = xla_conv(grad_out, flipped)
  # The weight gradient is patches^T @ grad_out, summed over batch and pixels.
  patches = image_patches(x, k).reshape(-1, k * k * c_in)
  grad_kernel = patches.T @ grad_out.reshape(-1, c_out)
  return grad_x, grad_kernel.reshape(kernel.shape)


explicit_vjp_conv.defvjp(_explicit_vjp_conv_fwd, _explicit_vjp_conv_bwd)
