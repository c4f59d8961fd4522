"""experiments/benchmark.py end to end on its smoke suite: the records and table it promises."""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for `experiments`
FIELDS = {"impl", "case", "config", "batch", "context_views", "steps_per_s", "scenes_per_s",
          "compile_s", "peak_mem_mib", "step_peak_mem_mib", "flops_per_step",
          "achieved_gflops", "fraction_of_matmul_peak"}


@pytest.mark.slow
def test_smoke_suite_writes_records_for_both_implementations(tmp_path):
  output = tmp_path / "bench.json"
  subprocess.run([sys.executable, str(ROOT / "experiments" / "benchmark.py"), "--suite=smoke",
                  "--warmup_steps=1", "--timed_steps=2", f"--output={output}"],
                 check=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
  result = json.loads(output.read_text())
  records = result["records"]
  assert sorted(r["impl"] for r in records) == ["gqn_jax", "pytorch"]
  for record in records:
    assert FIELDS <= set(record), FIELDS - set(record)
    assert record["scenes_per_s"] == pytest.approx(record["batch"] * record["steps_per_s"])
    assert record["peak_mem_mib"] > 0 and record["compile_s"] >= 0
  # Both rated by the same model FLOP count (gqn_jax's cost analysis).
  assert records[0]["flops_per_step"] == records[1]["flops_per_step"] > 0
  assert result["matmul_peak_gflops"] > 0
  table = output.with_suffix(".md").read_text()
  assert "smoke | gqn_jax" in table and "smoke | pytorch" in table
  assert "gqn_jax step time / PyTorch" in table


def test_precision_benchmark_times_one_computation_several_ways():
  """experiments/benchmark_precision.py: both its patch matmuls over its built patches are its
  convolution (so the two timings compare like with like), and it records every (op, dtype)."""
  import jax
  import numpy as np
  from experiments import benchmark_precision as bp
  ops = bp.ops(batch=1)
  conv, conv_shapes, _ = ops["convolution"]
  x, w = (jax.random.normal(jax.random.key(i), s) for i, s in enumerate(conv_shapes))
  patches = ops["build_patches"][0](x).reshape(ops["patch_matmul"][1][0])
  for matmul in ("patch_matmul", "patch_matmul_f32_out"):
    np.testing.assert_allclose(ops[matmul][0](patches, w).reshape(conv(x, w).shape),
                               conv(x, w), rtol=1e-4, atol=1e-3)
  # Both weight-gradient forms are the conv's weight gradient for that output gradient.
  grad = jax.random.normal(jax.random.key(2), ops["weight_grad_matmul"][1][1])
  _, conv_vjp = jax.vjp(conv, x, w)
  for matmul in ("weight_grad_matmul", "weight_grad_matmul_transposed_in_memory"):
    np.testing.assert_allclose(ops[matmul][0](patches, grad).reshape(w.shape),
                               conv_vjp(grad.reshape(conv(x, w).shape))[1], rtol=1e-4, atol=1e-3)
  records = bp.measure(batch=1, repeats=1)
  assert {(r["op"], r["dtype"]) for r in records} == {
      (op, dtype) for op in ops for dtype in ("float32", "bfloat16")}
  assert all(r["ms"] > 0 for r in records)
