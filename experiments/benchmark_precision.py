"""Where bfloat16 helps and where it hurts on this backend, op by op, at a core's shapes.

  .venv/bin/python -m experiments.benchmark_precision [--batch 4] [--output FILE.json]

One ConvLSTM core convolution of the paper model (16x16 grid, 5x5 kernel, 256 input and 512
output channels; the batch is --batch) timed in float32 and in bfloat16: XLA's convolution, the
same convolution as a matmul over already-built image patches (with the output in the inputs'
dtype, and with a float32 output, as gqn_jax writes it in bfloat16 on the CPU), building the
patches, and the conv's weight gradient (patches^T @ output gradient) written the way autodiff
transposes a dot and with the transpose carried out in memory (gqn_jax/cpu_kernels.py). Prints one
JSON record per (op, dtype) and each op's bfloat16/float32 speed ratio. Explains
`make bench-bf16`'s step times (README, Performance).
"""

import json

import jax
import jax.numpy as jnp
from jax import lax

from experiments import harness
from gqn_jax import allocator
from gqn_jax import cpu_kernels

GRID, KERNEL, C_IN, C_OUT = 16, 5, 256, 512


def ops(batch: int):
  """name -> (function, argument shapes, FLOPs or None for a data-movement op)."""
  conv_flops = 2 * batch * GRID * GRID * KERNEL * KERNEL * C_IN * C_OUT
  image = (batch, GRID, GRID, C_IN)
  kernel = (KERNEL, KERNEL, C_IN, C_OUT)
  patches = (batch * GRID * GRID, KERNEL * KERNEL * C_IN)
  grad = (batch * GRID * GRID, C_OUT)
  f32_dot = lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32)
  dot = cpu_kernels.accumulating_dot  # float32 accumulation, the output in the inputs' dtype
  same_dtype_conv = lambda x, w: lax.conv_general_dilated(
      x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return {
      "convolution": (same_dtype_conv, (image, kernel), conv_flops),
      "patch_matmul": (lambda p, w: p @ w.reshape(-1, C_OUT), (patches, kernel), conv_flops),
      # The same matmul accumulating into a float32 output.
      "patch_matmul_f32_out": (lambda p, w: f32_dot(p, w.reshape(-1, C_OUT)),
                               (patches, kernel), conv_flops),
      "build_patches": (lambda x: cpu_kernels.image_patches(x, KERNEL), (image,), None),
      # The weight gradient, output in the inputs' dtype: as autodiff transposes a dot (XLA's
      # CPU backend then upcasts bfloat16 operands to float32), and as gqn_jax/cpu_kernels.py writes
      # it for bfloat16 on the CPU, the transpose carried out in memory.
      "weight_grad_matmul": (lambda p, g: dot(p.T, g), (patches, grad), conv_flops),
      "weight_grad_matmul_transposed_in_memory": (
          lambda p, g: cpu_kernels.row_major(dot(cpu_kernels.transpose_in_memory(g), p)).T,
          (patches, grad), conv_flops),
  }


def measure(batch: int, repeats: int):
  records = []
  for name, (fn, shapes, flops) in ops(batch).items():
    for dtype in ("float32", "bfloat16"):
      args = [jax.random.normal(jax.random.key(i), shape).astype(dtype)
              for i, shape in enumerate(shapes)]
      seconds = harness.median_seconds(jax.jit(fn), *args, repeats=repeats)
      record = {"op": name, "dtype": dtype, "batch": batch, "ms": seconds * 1e3,
                "device": jax.devices()[0].device_kind, "malloc": allocator.active()}
      if flops:
        record["gflops_per_s"] = flops / seconds / 1e9
      records.append(record)
      print(json.dumps(record), flush=True)
  return records


def main(argv=None):
  parser = harness.parser(__doc__, output="precision_ops.json")
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args(argv)
  records = measure(args.batch, args.repeats)
  by = {(r["op"], r["dtype"]): r["ms"] for r in records}
  for name in ops(args.batch):
    print(f"{name}: bfloat16 runs {by[(name, 'float32')] / by[(name, 'bfloat16')]:.2f}x "
          f"the speed of float32 "
          f"({allocator.active()} malloc)")
  harness.write_results(args.output, records)


if __name__ == "__main__":
  harness.prepare_process()
  main()
