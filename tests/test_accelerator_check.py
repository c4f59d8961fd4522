"""experiments/accelerator_check.py: its CPU rehearsal on a machine without the data stack, and
its refusal where JAX has no GPU."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import pytest

import test_packaging

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "accelerator_check.py"
# Not on the GPU machine the script is for; blocked here in every process it starts.
ABSENT = ("tensorflow", "tensorflow_datasets", "grain", "mujoco", "apache_beam", "clu",
          "matplotlib")


def run_script(tmp_path, *args, blocked=(), timeout=600):
  """The script in a fresh interpreter whose ``blocked`` modules (and its children's) cannot be
  imported: a sitecustomize on PYTHONPATH installs the blocker at every start-up."""
  site = tmp_path / "site"
  site.mkdir()
  (site / "sitecustomize.py").write_text(f"BLOCKED = {tuple(blocked)!r}\n"
                                         + test_packaging.BLOCKER)
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH",
                                                                                "")]))
  env.pop("JAX_PLATFORMS", None)
  return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                        cwd=REPO, env=env, timeout=timeout, check=False)


@pytest.mark.slow
def test_dry_run_cpu_runs_every_part_without_the_data_stack(tmp_path):
  output = tmp_path / "report.json"
  result = run_script(tmp_path, "--dry_run_cpu", f"--output={output}", blocked=ABSENT)
  report = json.loads(output.read_text()) if output.exists() else {"parts": {}}
  errors = "".join(f"\n[{name}] {part.get('traceback') or part.get('error')}"
                   for name, part in report["parts"].items() if part["status"] != "pass")
  assert result.returncode == 0, result.stdout + result.stderr + errors
  assert report["mode"] == "dry_run_cpu" and report["ok"] and report["failed"] == []
  assert report["data_stack_imported"] == []
  parts = report["parts"]
  assert {name: part["status"] for name, part in parts.items()} == {
      name: "pass" for name in ("generator", "torch_parity", "data_parallel", "benchmark",
                                "training")}
  assert parts["generator"]["worst_relative_error"] < parts["generator"]["tolerance"]
  assert parts["torch_parity"]["worst"]["gradients"] < 1e-3
  # Two simulated CPU devices: the data-parallel step is compared with one device's for real.
  assert parts["data_parallel"]["devices"] == 2
  records = parts["benchmark"]["records"]
  assert {r["impl"] for r in records} == {"gqn_jax", "pytorch"}
  assert all(r["step_s"] > 0 and r["steps_per_s"] > 0 for r in records)
  training = parts["training"]
  assert training["finite"] and training["steps"] > 1 and training["steps_per_s"] > 0
  assert report["wall_s"] < 480


def test_refuses_without_a_gpu(tmp_path):
  if any(device.platform == "gpu" for device in jax.devices()):
    pytest.skip("JAX has a GPU here: the script would run, not refuse")
  output = tmp_path / "report.json"
  result = run_script(tmp_path, f"--output={output}", "--budget_s=60")
  assert result.returncode == 2, result.stdout + result.stderr
  assert "refusing: no GPU for JAX" in result.stderr
  assert "--dry_run_cpu" in result.stderr
  assert "refused" in json.loads(output.read_text())
