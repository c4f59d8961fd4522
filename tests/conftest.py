"""Shared fixtures: tiny model configs, random inputs, and a fresh interpreter with its own XLA
flags."""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import textwrap

# Many tests (and the training runs they start as subprocesses, which inherit the environment)
# compile the same tiny programs again: a train step is a new closure each time it is made, so
# only a persistent cache, keyed by the program and the compiler's flags, can reuse it. Both
# xdist workers share it; it lives in pytest's own cache directory (git-ignored, `make clean`
# removes it with the rest), and JAX_COMPILATION_CACHE_DIR set by the caller wins.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(
    pathlib.Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax_compilation_cache"))

from gqn_jax import xla_flags  # noqa: E402  pylint: disable=wrong-import-position

xla_flags.set_cpu_flags()  # as the entry points do, before JAX starts (on the CPU only).

import jax  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

from gqn_jax import config as config_lib  # noqa: E402  pylint: disable=wrong-import-position
from gqn_jax.configs import tiny  # noqa: E402  pylint: disable=wrong-import-position

# Tiny models compile in seconds and run in milliseconds; compilation dominates the suite, so
# spend less of it on optimisation passes.
jax.config.update("jax_disable_most_optimizations", True)


@pytest.fixture(scope="session", autouse=True)
def temporary_files_under_pytests_basetemp(tmp_path_factory):
  """Temporary files of the tests and their subprocesses go under pytest's own temporary
  directory (which pytest prunes to the last few runs): Beam's job server leaves a
  ``beam-temp*`` directory behind in the system's on every pipeline it runs."""
  directory = tmp_path_factory.mktemp("tmp")
  saved = os.environ.get("TMPDIR")
  os.environ["TMPDIR"], tempfile.tempdir = str(directory), None  # None: re-read on next use.
  yield
  if saved is None:
    os.environ.pop("TMPDIR", None)
  else:
    os.environ["TMPDIR"] = saved
  tempfile.tempdir = None


def tiny_model_config(**overrides) -> config_lib.ModelConfig:
  return dataclasses.replace(config_lib.model_config(tiny.get_config().model), **overrides)


def tiny_optim_config(**overrides) -> config_lib.OptimConfig:
  return dataclasses.replace(config_lib.optim_config(tiny.get_config().optim), **overrides)


def random_batch(model_cfg, key, batch_size=2, views=3):
  size = model_cfg.image_size
  k = jax.random.split(key, 5)
  return {
      "context_images": jax.random.uniform(k[0], (batch_size, views, size, size, 3)),
      "context_poses": jax.random.normal(k[1], (batch_size, views, 7)),
      "context_mask": jax.numpy.ones((batch_size, views), bool),
      "query_image": jax.random.uniform(k[2], (batch_size, size, size, 3)),
      "query_pose": jax.random.normal(k[3], (batch_size, 7)),
  }


@pytest.fixture
def key():
  return jax.random.key(0)


def run_python_json(code: str, env_xla_flags: str = "") -> dict:
  """Runs ``code`` in a fresh interpreter (its own XLA flags, full optimisation); its last
  stdout line is JSON."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env["XLA_FLAGS"] = env_xla_flags
  env["JAX_PLATFORMS"] = "cpu"  # the CPU pipeline is the subject, on any machine
  out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, check=True,
                       capture_output=True, text=True, timeout=600).stdout
  return json.loads(out.strip().splitlines()[-1])
