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
