"""experiments/benchmark.py end to end on its smoke suite: the records and table it promises."""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIELDS = {"impl", "case", "config", "batch", "context_views", "steps_per_s", "scenes_per_s",
          "compile_s", "peak_mem_mib", "step_peak_mem_mib", "flops_per_step",
          "achieved_gflops", "fraction_of_matmul_peak"}


@pytest.mark.slow
def test_smoke_suite_writes_records_for_both_implementations(tmp_path):
  output = tmp_path / "bench.json"
  subprocess.run([sys.executable, "-m", "experiments.benchmark", "--suite=smoke",
                  "--warmup_steps=1", "--timed_steps=2", f"--output={output}"],
                 check=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
  result = json.loads(output.read_text())
  records = result["records"]
  assert sorted(r["impl"] for r in records) == ["gqn_jax", "pytorch"]
  for record in records:
    assert FIELDS <= set(record), FIELDS - set(record)
    assert record["scenes_per_s"] == pytest.approx(record["batch"] * record["steps_per_s"])
    assert record["peak_mem_mib"] > 0 and record["compile_s"] >= 0
  # Each gqn_jax record names the XLA flags it ran with (the harness sets the CPU flags).
  from gqn_jax import xla_flags  # pylint: disable=g-import-not-at-top
  jax_record = next(r for r in records if r["impl"] == "gqn_jax")
  assert xla_flags.PASS in jax_record["detail"]["xla_flags"]
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


def test_gpu_suite_runs_the_paper_model_at_batch_36_in_both_precisions_and_both_impls():
  """The issue's accelerator run: the paper config at batch 36, float32 and bfloat16, with the
  PyTorch baseline beside gqn_jax, every case pinned to the GPU."""
  from experiments import benchmark
  from gqn_jax.config import ModelConfig
  cases = benchmark.SUITES["gpu"]
  assert all(case.device == "gpu" and case.batch == 36 for case in cases)
  compared = {(ModelConfig(**case.model).dtype, impl) for case in cases for impl in case.impls
              if set(case.model) <= {"dtype"}}  # the paper architecture, nothing else changed
  assert compared == {(dtype, impl) for dtype in ("float32", "bfloat16")
                      for impl in ("gqn_jax", "pytorch")}


def test_gpu_cases_refuse_to_run_without_a_gpu():
  """A GPU case on a machine where JAX or PyTorch only sees the CPU fails and says what to
  install, rather than timing the CPU under a GPU case's name."""
  import jax
  import torch
  from experiments import benchmark, benchmark_torch
  case = benchmark.SUITES["gpu"][0]
  if jax.default_backend() == "gpu" or torch.cuda.is_available():
    pytest.skip("a GPU is present")
  with pytest.raises(RuntimeError, match=r"jax\[cuda12\]"):
    benchmark.measure_jax(case, warmup_steps=1, timed_steps=1)
  with pytest.raises(RuntimeError, match="sees no CUDA device"):
    benchmark_torch.measure(benchmark_torch.parse_overrides(["steps=1"]), batch=1,
                            context_views=1, warmup_steps=1, timed_steps=1, compile=False,
                            threads=0, device="cuda")


def test_table_gains_a_device_memory_column_only_when_a_record_has_one():
  from experiments import benchmark

  def record(impl, device_peak):
    return {"case": "c", "impl": impl, "batch": 36, "step_s": 0.5, "scenes_per_s": 72.0,
            "compile_s": 1.0, "peak_mem_mib": 900.0, "step_peak_mem_mib": 800.0,
            "device_peak_mem_mib": device_peak}

  for peaks, columns in (((None, None), 11), ((40000.0, 30000.0), 12)):
    table = benchmark.markdown_table([record("gqn_jax", peaks[0]), record("pytorch", peaks[1])],
                                     peak_gflops=100.0, machine="m")
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert len(rows) == 4
    assert {row.count("|") - 1 for row in rows} == {columns}
    if peaks[0]:
      assert rows[2].endswith("| 40000 |") and rows[3].endswith("| 30000 |")


def test_profile_sorts_each_compiled_operation_by_what_it_computes():
  """experiments/profile_step.py: its kinds of a compiled module's operations follow the
  operations inside them (a dot, XLA's convolution, arithmetic, pure data movement)."""
  import jax
  import jax.numpy as jnp
  from experiments import profile_step

  def program(a, b, image, kernel):
    matmul = a @ b
    conv = jax.lax.conv_general_dilated(image, kernel, (1, 1), "SAME")
    moved = jnp.concatenate([a.T, b], axis=1).T
    return matmul, conv, moved, jnp.exp(a) * 3.0

  args = (jnp.ones((64, 64)), jnp.ones((64, 64)), jnp.ones((1, 4, 16, 16)), jnp.ones((8, 4, 3, 3)))
  text = jax.jit(program).lower(*args).compile().as_text()
  kinds = profile_step.hlo_kinds(text)
  matmuls = [op for kind, op in kinds.values() if kind == "matmul"]
  assert matmuls and all(op.endswith("dot_general") for op in matmuls)
  assert any(kind == "convolution" for kind, _ in kinds.values())
  assert any(op.endswith(("exp", "mul")) for kind, op in kinds.values()
             if kind == "elementwise and reductions")
  # The concatenation and transposes copy numbers and compute none.
  assert {kind for kind, op in kinds.values() if op.endswith(("concatenate", "transpose"))} == {
      "data movement"}


@pytest.mark.slow
def test_profile_of_a_small_step_accounts_for_its_matmuls(tmp_path):
  """The profile of a small model's train step records operations of each kind the step has,
  the matmuls among them, and writes its table."""
  output = tmp_path / "profile.json"
  from experiments import profile_step
  result = profile_step.profile(dict(image_size=16, r_channels=16, steps=2, hidden_channels=8,
                                     canvas_channels=8, latent_channels=2),
                                batch_size=2, context_views=2, timed_steps=2, profiled_steps=2,
                                top=5)
  kinds = {k["kind"]: k for k in result["kinds"]}
  assert kinds["matmul"]["s_per_step"] > 0 and kinds["matmul"]["ops_per_step"] > 0
  assert result["recorded_s_per_step"] == pytest.approx(sum(k["s_per_step"] for k in kinds.values()))
  assert len(result["top_ops"]) == 5
  table = profile_step.table(result, "test machine")
  assert "| matmul |" in table
