"""Array-level building blocks of the generator: the linear-algebra identities it is built on
(convolutions of constants, stacked, composed and strided convolutions as matmuls), ConvLSTM.

Everything here is a pure function of arrays, so the generator can hold its own parameters and
run its L steps under ``jax.lax.scan``. Which kernels run is not decided here: the generator
calls ``choose`` once, from its config and JAX's platform, and passes the choice (a conv
backend and whether matmuls take the CPU's bfloat16 route, ``gqn_jax/cpu_kernels.py``) down.
"""

from typing import NamedTuple

import jax
from jax import lax
import jax.numpy as jnp

from gqn_jax import cpu_kernels

_BACKENDS = {"xla": cpu_kernels.xla_conv, "explicit_vjp": cpu_kernels.explicit_vjp_conv,
             # As a per-step backend the patches (k*k times the input) are rebuilt in the
             # backward pass rather than kept for every step of the scan.
             "im2col": jax.checkpoint(cpu_kernels.im2col_conv, static_argnums=(2,))}


class KernelChoice(NamedTuple):
  """The platform's choice of kernels: the scan's conv backend and the matmul route."""
  conv: str          # 'xla', 'explicit_vjp' or 'im2col'.
  bf16_dots: bool    # bfloat16 matmuls through cpu_kernels.bf16_matmul.


def choose(conv_backend: str, dtype, platform: str) -> KernelChoice:
  """``conv_backend`` 'auto' -> 'im2col' on the CPU (XLA's in-loop conv gradients are slow
  there, and in bfloat16 only matmuls are fast), 'xla' on GPU and TPU, whose convolution
  libraries handle both dtypes, in loops too. The bfloat16 matmul route applies on the CPU."""
  if conv_backend == "auto":
    conv_backend = "im2col" if platform == "cpu" else "xla"
  if conv_backend not in _BACKENDS:
    raise ValueError(f"unknown conv backend {conv_backend!r}; known: {sorted(_BACKENDS)} or 'auto'")
  return KernelChoice(conv_backend, jnp.dtype(dtype) == jnp.bfloat16 and platform == "cpu")


def matmul(a, b, choice: KernelChoice):
  """a [..., K] @ b [K, N] in a's dtype, by the chosen route."""
  return cpu_kernels.matmul(a, b, choice.bf16_dots)


def conv2d(x, kernel, choice: KernelChoice):
  """Stride-1 'same' convolution, x [N, H, W, C], kernel [k, k, C, O] -> [N, H, W, O]."""
  kernel = kernel.astype(x.dtype)
  if choice.conv == "im2col":
    return _BACKENDS["im2col"](x, kernel, choice.bf16_dots)
  return _BACKENDS[choice.conv](x, kernel)


def conv2d_stacked(x, kernels, choice: KernelChoice):
  """One input through L kernels at once: x [B, G, G, C], kernels [L, k, k, C, O] -> [L, B, G, G, O].

  A single convolution with L*O output channels, run outside the scan, written as one matmul
  over image patches: with thousands of output channels XLA's CPU convolution gradients are
  slow, while the matmul's gradients are matmuls too (``experiments/benchmark_convs.py``, its
  stacked rows).
  """
  steps, k, _, c_in, c_out = kernels.shape
  merged = jnp.moveaxis(kernels, 0, -2).reshape(k, k, c_in, steps * c_out)
  out = cpu_kernels.im2col_conv(x, merged.astype(x.dtype), choice.bf16_dots)  # [B, G, G, L*O]
  out = out.reshape(*out.shape[:3], steps, c_out)
  return jnp.moveaxis(out, 3, 0)


def flax_conv(choice: KernelChoice):
  """A drop-in ``lax.conv_general_dilated`` for flax's ``nn.Conv`` (its ``conv_general_dilated``
  field) that runs the representation networks' convolutions by the chosen kernels.

  With 'xla' it is XLA's own op. Otherwise a k x k kernel with stride k ('VALID', the networks'
  downsampling) is one matmul over the image's k x k blocks (``space_to_depth``) and a 1x1
  kernel a plain matmul: XLA's CPU backend runs a convolution's gradients far slower than a
  matmul's (``experiments/benchmark.py``'s reference suite). The 3x3 'same' convolutions stay
  XLA's: outside a loop they run no slower as patch matmuls, and the patches (9x the input)
  would dominate the step's memory. The parameters are nn.Conv's own, so either way reads the
  same checkpoint.
  """
  if choice.conv == "xla":
    return lax.conv_general_dilated

  def conv(inputs, kernel, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
           dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
    k_h, k_w, _, c_out = kernel.shape
    nhwc = lax.conv_dimension_numbers(inputs.shape, kernel.shape, ("NHWC", "HWIO", "NHWC"))
    plain = (k_h == k_w and feature_group_count == 1 and not kwargs
             and all(d == 1 for d in (lhs_dilation or ()) + (rhs_dilation or ()))
             and lax.conv_dimension_numbers(inputs.shape, kernel.shape, dimension_numbers)
             == nhwc)
    strides = tuple(window_strides)
    if plain and padding == "VALID" and strides == (k_h, k_w):
      height, width = (inputs.shape[1] // k_h) * k_h, (inputs.shape[2] // k_w) * k_w
      blocks = space_to_depth(inputs[:, :height, :width], k_h)
      return matmul(blocks, kernel.reshape(-1, c_out), choice)
    if plain and padding in ("SAME", "VALID") and strides == (1, 1) and k_h == 1:
      return matmul(inputs, kernel.reshape(-1, c_out), choice)
    return lax.conv_general_dilated(inputs, kernel, window_strides, padding, lhs_dilation,
                                    rhs_dilation, dimension_numbers, feature_group_count,
                                    precision=precision, **kwargs)

  return conv


def tap_mask(grid_size: int, kernel_size: int):
  """[G, G, k, k] mask: 1 where tap (dy, dx) of a 'same' convolution at (i, j) is inside the grid."""
  pad = kernel_size // 2
  rows = jnp.arange(grid_size)[:, None] + jnp.arange(kernel_size)[None, :] - pad  # [G, k]
  inside = (rows >= 0) & (rows < grid_size)
  return (inside[:, None, :, None] & inside[None, :, None, :]).astype(jnp.float32)


def conv2d_of_constant(values, kernels, grid_size: int):
  """'Same' convolution of spatially constant maps, for L kernels at once.

  values [B, C] stands for the map broadcast to [B, G, G, C]; kernels [L, k, k, C, O].
  Returns [L, B, G, G, O], equal to ``conv2d_stacked(broadcast(values), kernels)``.

  A constant map's convolution only differs across the grid where zero padding cuts taps off, so
  it costs k*k small matmuls instead of a G*G-pixel convolution: this is what makes the pose and
  a 1x1 r, which feed every generator step, cheap.
  """
  k = kernels.shape[1]
  per_tap = jnp.einsum("bc,lyxco->lbyxo", values, kernels.astype(values.dtype))
  mask = tap_mask(grid_size, k).astype(values.dtype)
  return jnp.einsum("ijyx,lbyxo->lbijo", mask, per_tap)


def space_to_depth(x, block: int):
  """[B, s*G, s*G, C] -> [B, G, G, s*s*C], each cell's s x s block ordered (p, q, c) like a
  flattened [s, s, C, O] kernel's input axes."""
  b, h, w, c = x.shape
  blocks = x.reshape(b, h // block, block, w // block, block, c).swapaxes(2, 3)
  return blocks.reshape(b, h // block, w // block, block * block * c)


def space_to_depth_conv(x, kernel, bias, choice: KernelChoice):
  """Conv with a 4x4 (or s x s) kernel and equal stride: x [B, s*G, s*G, C] -> [B, G, G, O]."""
  s, _, c_in, c_out = kernel.shape
  return (matmul(space_to_depth(x, s), kernel.reshape(s * s * c_in, c_out), choice)
          + bias.astype(x.dtype))


def strided_then_stacked_conv(x, down_kernel, down_bias, kernels, grid_size: int,
                              choice: KernelChoice):
  """``conv2d_stacked(space_to_depth_conv(x, down_kernel, down_bias), kernels)``, computed as
  one convolution of the image's s x s blocks with the two kernels composed.

  Both maps are linear, so their composition is a single k x k convolution over the grid of
  s*s*C-channel blocks (48 channels for an RGB image and s = 4), and the bias's share is the
  convolution of a constant. Cheaper when s*s*C is smaller than the downsampled channel count
  (128 in the paper): the query image's share of the inference core's gates then costs about
  a third, and no gradient flows back to the image at all.
  """
  s, _, c_in, hidden = down_kernel.shape
  composed = jnp.einsum("dh,lyxho->lyxdo", down_kernel.reshape(s * s * c_in, hidden),
                        kernels)  # [L, k, k, s*s*C, O]
  gates = conv2d_stacked(space_to_depth(x, s), composed, choice)
  return gates + conv2d_of_constant(down_bias[None].astype(x.dtype), kernels, grid_size)


def depth_to_space_conv(x, kernel, bias):
  """Transposed conv with an s x s kernel and stride s: x [B, G, G, C] -> [B, s*G, s*G, O].

  Output pixel (s*i + p, s*j + q) is x[i, j] @ kernel[p, q] + bias (PyTorch's ConvTranspose2d
  with kernel_size = stride = s, weight[c, o, p, q] = kernel[p, q, c, o]).
  """
  s, _, _, c_out = kernel.shape
  b, g, _, _ = x.shape
  out = jnp.einsum("bijc,pqco->bipjqo", x, kernel.astype(x.dtype))
  return out.reshape(b, g * s, g * s, c_out) + bias.astype(x.dtype)


def lstm_update(gates, cell):
  """ConvLSTM state update from pre-activation gates [..., 4H] (input, forget, output, candidate)."""
  input_gate, forget_gate, output_gate, candidate = jnp.split(gates, 4, axis=-1)
  cell = jax.nn.sigmoid(forget_gate) * cell + jax.nn.sigmoid(input_gate) * jnp.tanh(candidate)
  hidden = jax.nn.sigmoid(output_gate) * jnp.tanh(cell)
  return hidden, cell


def gaussian_params(head_out):
  """Splits a head's output [..., 2Z] into mean and log-scale [..., Z] each."""
  mean, log_scale = jnp.split(head_out, 2, axis=-1)
  return mean, log_scale

