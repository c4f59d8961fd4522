"""Parameter counts: the CLI's JSON, and the generator's count in closed form."""

import json
import subprocess
import sys

from conftest import tiny_model_config
from gqn_jax import summary


def test_generator_count_closed_form():
  cfg = tiny_model_config()
  counts = summary.parameter_counts(cfg)
  L, H, Z, U, R, k, P = (cfg.steps, cfg.hidden_channels, cfg.latent_channels,
                         cfg.canvas_channels, cfg.r_channels, cfg.kernel_size, 7)
  gates = 4 * H
  # Per step: a conv over the core's concatenated inputs, plus its bias.
  assert counts["generator/generation_core"] == L * (k * k * (H + Z + P + R) * gates + gates)
  assert counts["generator/inference_core"] == L * (k * k * (3 * H + H + P + R) * gates + gates)
  assert counts["generator/prior"] == L * (k * k * H * 2 * Z + 2 * Z)
  assert counts["generator/canvas_upsample"] == L * (16 * H * U + U)
  assert counts["generator/observation"] == U * 3 + 3


def test_shared_cores_divide_step_counts_by_L():
  unshared = summary.parameter_counts(tiny_model_config())
  shared = summary.parameter_counts(tiny_model_config(share_cores=True))
  L = tiny_model_config().steps
  for name in ("generation_core", "inference_core", "prior", "posterior", "canvas_upsample"):
    assert unshared[f"generator/{name}"] == L * shared[f"generator/{name}"]


def test_cli_json():
  out = subprocess.run([sys.executable, "-m", "gqn_jax.summary",
                        "--config=gqn_jax/configs/tiny.py", "--json"],
                       capture_output=True, text=True, check=True)
  record = json.loads(out.stdout.strip().splitlines()[-1])
  assert record["total_params"] == sum(record["modules"].values())
  assert record["modules"] == summary.parameter_counts(tiny_model_config())


def test_cli_rejects_bad_config_value():
  out = subprocess.run([sys.executable, "-m", "gqn_jax.summary",
                        "--config=gqn_jax/configs/tiny.py", "--config.model.image_size=10"],
                       capture_output=True, text=True)
  assert out.returncode != 0 and "config.model.image_size" in out.stderr
