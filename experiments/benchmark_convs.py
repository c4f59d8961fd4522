"""The paper step's convolutions alone, through each of gqn_jax's conv backends.

  make bench-convs   # .venv/bin/python -m experiments.benchmark_convs [--batch 4]
                    #     [--dtype bfloat16] [--backends explicit_vjp im2col] [--output=...]

Two shapes of work dominate the paper step (16x16 grid, 5x5 kernels):
* inside the scan, each step's conv of the core state (inference core 384 -> 512 channels,
  generation core 131 -> 512), L = 12 steps under ``lax.scan``;
* before the scan, one input convolved with all L steps' kernels at once (the tower r:
  256 -> 12 x 512 channels; ``layers.conv2d_stacked``).
For each: forward time and forward + backward (gradients for input and kernel) time, median of
several runs, per backend. This is the measurement behind the backend choices in
gqn_jax/cpu_kernels.py (on the CPU, a patch matmul inside the scan and for the stacked conv).
"""

import jax
import jax.numpy as jnp

from experiments import harness
from gqn_jax import allocator
from gqn_jax import layers

_BACKENDS = ("xla", "explicit_vjp", "im2col")  # layers.choose's choices besides "auto".


def _choice(backend, dtype):
  return layers.choose(backend, dtype, jax.default_backend())


def _scanned_loss(backend, channels):
  def loss(x, kernels):
    def body(h, kernel):  # keep the state's width so that the next step can read it.
      out = layers.conv2d(h, kernel, _choice(backend, h.dtype))[..., :channels]
      return jnp.tanh(out).astype(h.dtype), None
    return jnp.sum(jax.lax.scan(body, x, kernels)[0].astype(jnp.float32))
  return loss


def _stacked_loss(conv):
  return lambda x, kernels: jnp.sum(jnp.tanh(conv(x, kernels)).astype(jnp.float32))


def _merged_conv(backend):
  """All L kernels as one conv with L*O output channels, through ``layers.conv2d``."""
  def conv(x, kernels):
    steps, k, _, c_in, c_out = kernels.shape
    return layers.conv2d(x, jnp.moveaxis(kernels, 0, -2).reshape(k, k, c_in, steps * c_out),
                         _choice(backend, x.dtype))
  return conv


def cases(batch: int, steps: int = 12, grid: int = 16):
  """(name, loss builder per backend, x shape, kernel shape, FLOPs of one forward)."""
  out = []
  for name, c_in in (("inference core state, in scan", 384), ("generation core state, in scan",
                                                               131)):
    flops = 2 * batch * grid * grid * 25 * c_in * 512 * steps
    out.append((name, {b: _scanned_loss(b, c_in) for b in _BACKENDS},
                (batch, grid, grid, c_in), (steps, 5, 5, c_in, 512), flops))
  flops = 2 * batch * grid * grid * 25 * 256 * 512 * steps
  stacked = {b: _stacked_loss(_merged_conv(b)) for b in ("xla", "explicit_vjp")}
  stacked["layers.conv2d_stacked (im2col)"] = _stacked_loss(
      lambda x, kernels: layers.conv2d_stacked(x, kernels, _choice("auto", x.dtype)))
  out.append(("tower r, all steps' kernels at once", stacked,
              (batch, grid, grid, 256), (steps, 5, 5, 256, 512), flops))
  return out


def main(argv=None):
  parser = harness.parser(__doc__, output="convs.json")
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                      help="of the input (kernels are float32 and cast, as in the model)")
  parser.add_argument("--backends", nargs="*", help="only these (default: all)")
  args = parser.parse_args(argv)
  key_x, key_k = jax.random.split(jax.random.key(0))
  records = []
  print(f"{allocator.active()} malloc, JAX {jax.__version__} on {jax.devices()[0].device_kind}")
  print("| convolution | backend | forward (ms) | forward + backward (ms) | fwd GFLOP/s |")
  print("|---|---|---|---|---|")
  for name, losses, x_shape, k_shape, flops in cases(args.batch):
    x = jax.random.normal(key_x, x_shape, args.dtype)
    kernels = jax.random.normal(key_k, k_shape) * 0.02
    for backend, loss in losses.items():
      if args.backends and not any(b in backend for b in args.backends):
        continue
      forward = harness.median_seconds(jax.jit(loss), x, kernels, repeats=args.repeats)
      both = harness.median_seconds(jax.jit(jax.grad(loss, argnums=(0, 1))), x, kernels,
                                     repeats=args.repeats)
      records.append(dict(conv=name, backend=backend, batch=args.batch, dtype=args.dtype,
                          forward_s=forward,
                          forward_backward_s=both, forward_gflops=flops / forward / 1e9))
      print(f"| {name} | {backend} | {forward * 1e3:.0f} | {both * 1e3:.0f} | "
            f"{flops / forward / 1e9:.0f} |", flush=True)
  harness.write_results(args.output, records)


if __name__ == "__main__":
  harness.prepare_process()
  main()
