"""Array-level building blocks of the generator: convolutions, patch (de)convolutions, ConvLSTM.

Everything here is a pure function of arrays, so the generator can hold its own parameters and
run its L steps under ``jax.lax.scan``.

Why three convolution backends: on the CPU runtime, XLA lowers a convolution's *gradients* inside
a while loop (the scan) far more slowly than the same gradients outside one (jax-ml/jax#12868):
the weight gradient ran ~20x and the input gradient ~3.6x slower in our measurements, while the
forward convolution ran at full speed. Two backends write the backward pass by hand, as
operations XLA handles well in a loop body. ``explicit_vjp`` keeps XLA's forward convolution; its
input gradient is another forward convolution (flipped, transposed kernel), its weight gradient
one matmul over image patches. ``im2col`` is a matmul over image patches both ways: the patches
are rebuilt in the backward pass, and the patch gradients are added back into pixels in float32
(``image_patches``' own backward pass). On this project's CPU, forward + backward, ``im2col``
ran the inference core's convolutions faster than ``explicit_vjp`` in float32 and about level
on the generation core's, and both far faster in bfloat16 (``experiments/benchmark_convs.py``),
so 'auto' picks it there.

bfloat16 on the CPU: XLA's CPU backend has a fast bfloat16 matmul only when it accumulates into a
float32 output from row-major operands; a bfloat16-output dot, or one over a transposed operand,
runs in float32 (operands upcast), and a bfloat16 convolution is no faster than a float32 one
(experiments/benchmark_precision.py). So the large matmuls here (the core convolutions, the
stacked pre-scan convolutions, the canvas update) go through ``matmul``, which accumulates
bfloat16 in float32, forward and backward.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _xla_conv(x, kernel):
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
  ``experiments/benchmark_convs.py`` before and after this backward pass was added).
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


def _fast_bf16_dots(dtype) -> bool:
  """Whether matmuls in ``dtype`` take this module's bfloat16 route (see the module docstring)."""
  return jnp.dtype(dtype) == jnp.bfloat16 and jax.default_backend() == "cpu"


def accumulating_dot(a, b):
  """a [M, K] @ b [K, N] accumulated in float32, the result in a's dtype."""
  return jnp.dot(a, b, preferred_element_type=jnp.float32).astype(a.dtype)


def row_major(x):
  """x, stored row-major: flattened (one layout only) across an optimization barrier.

  XLA's CPU backend only runs a bfloat16 dot in bfloat16 when its operands and result are
  row-major with the contraction on lhs's last axis and rhs's first. Otherwise it upcasts the
  operands to float32 (half the speed) or, for some shapes, fails ("Unsupported element type for
  DotThunk"). A transpose next to a dot is otherwise folded into the dot's dimensions or into a
  column-major layout.
  """
  return lax.optimization_barrier(x.reshape(-1)).reshape(x.shape)


def transpose_in_memory(x):
  """x.T, stored row-major (see ``row_major``)."""
  return row_major(x.T)


@jax.custom_vjp
def _bf16_matmul(a, b):
  return accumulating_dot(a.reshape(-1, a.shape[-1]), b).reshape(*a.shape[:-1], b.shape[-1])


def _bf16_matmul_fwd(a, b):
  return _bf16_matmul(a, b), (a, b)


def _bf16_matmul_bwd(residuals, grad_out):
  a, b = residuals
  flat_a = a.reshape(-1, a.shape[-1])                               # [M, K]
  flat_grad = grad_out.reshape(-1, grad_out.shape[-1]).astype(a.dtype)  # [M, N]
  (m, k), n = flat_a.shape, flat_grad.shape[1]
  # Each gradient contracts an axis that is not in place for a native dot, so something must be
  # transposed in memory; of the two ways, move fewer elements. grad_a [M, K] = grad @ b.T: b
  # [K, N], or the gradient [M, N] and then the [K, M] result (the tower r's merged kernel is
  # 6400 x 6144 against a 1024-row gradient at batch 4).
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


_bf16_matmul.defvjp(_bf16_matmul_fwd, _bf16_matmul_bwd)


def matmul(a, b):
  """a [..., K] @ b [K, N] in a's dtype (b is cast to it). bfloat16 on the CPU accumulates in
  float32, forward and backward, with every dot in the form XLA runs natively in bfloat16."""
  b = b.astype(a.dtype)
  return _bf16_matmul(a, b) if _fast_bf16_dots(a.dtype) else a @ b


def _im2col_conv(x, kernel):
  k, _, c_in, c_out = kernel.shape
  return matmul(image_patches(x, k), kernel.reshape(k * k * c_in, c_out))


# As a per-step conv backend, the patches (k*k times the input) are rebuilt in the backward pass
# rather than kept for every step of the scan.
_im2col_conv_rebuilding_patches = jax.checkpoint(_im2col_conv)


@jax.custom_vjp
def _explicit_vjp_conv(x, kernel):
  return _xla_conv(x, kernel)


def _explicit_vjp_conv_fwd(x, kernel):
  return _xla_conv(x, kernel), (x, kernel)


def _explicit_vjp_conv_bwd(residuals, grad_out):
  x, kernel = residuals
  k, _, c_in, c_out = kernel.shape
  # The input gradient of a stride-1 'same' convolution is a 'same' convolution of the output
  # gradient with the spatially flipped kernel, input and output channels swapped.
  flipped = jnp.flip(kernel, axis=(0, 1)).swapaxes(2, 3)
  grad_x = _xla_conv(grad_out, flipped)
  # The weight gradient is patches^T @ grad_out, summed over batch and pixels.
  patches = image_patches(x, k).reshape(-1, k * k * c_in)
  grad_kernel = patches.T @ grad_out.reshape(-1, c_out)
  return grad_x, grad_kernel.reshape(kernel.shape)


_explicit_vjp_conv.defvjp(_explicit_vjp_conv_fwd, _explicit_vjp_conv_bwd)

_BACKENDS = {"xla": _xla_conv, "explicit_vjp": _explicit_vjp_conv,
             "im2col": _im2col_conv_rebuilding_patches}


def resolve_backend(backend: str) -> str:
  """'auto' -> 'im2col' on the CPU (XLA's in-loop conv gradients are slow, and in bfloat16 only
  matmuls are fast); 'xla' on GPU and TPU, whose convolution libraries handle both dtypes, in
  loops too."""
  if backend != "auto":
    return backend
  return "im2col" if jax.default_backend() == "cpu" else "xla"


def conv2d(x, kernel, backend: str = "auto"):
  """Stride-1 'same' convolution, x [N, H, W, C], kernel [k, k, C, O] -> [N, H, W, O]."""
  try:
    conv = _BACKENDS[resolve_backend(backend)]
  except KeyError:
    raise ValueError(f"unknown conv backend {backend!r}; known: {sorted(_BACKENDS)}") from None
  return conv(x, kernel.astype(x.dtype))


def conv2d_stacked(x, kernels):
  """One input through L kernels at once: x [B, G, G, C], kernels [L, k, k, C, O] -> [L, B, G, G, O].

  A single convolution with L*O output channels, run outside the scan, written as one matmul
  over image patches: with thousands of output channels XLA's CPU convolution gradients are
  slow, while the matmul's gradients are matmuls too (tower r at batch 4, forward + backward:
  1.2 s as an XLA conv, 0.73 s as a patch matmul in one run of
  experiments/benchmark_convs.py).
  """
  steps, k, _, c_in, c_out = kernels.shape
  merged = jnp.moveaxis(kernels, 0, -2).reshape(k, k, c_in, steps * c_out)
  out = _im2col_conv(x, merged.astype(x.dtype))  # [B, G, G, L*O]
  out = out.reshape(*out.shape[:3], steps, c_out)
  return jnp.moveaxis(out, 3, 0)


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


def space_to_depth_conv(x, kernel, bias):
  """Conv with a 4x4 (or s x s) kernel and equal stride: x [B, s*G, s*G, C] -> [B, G, G, O]."""
  s, _, c_in, c_out = kernel.shape
  return matmul(space_to_depth(x, s), kernel.reshape(s * s * c_in, c_out)) + bias.astype(x.dtype)


def strided_then_stacked_conv(x, down_kernel, down_bias, kernels, grid_size: int):
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
  gates = conv2d_stacked(space_to_depth(x, s), composed)
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

