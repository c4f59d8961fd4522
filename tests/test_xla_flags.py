"""gqn_jax/xla_flags.py: which flags are set where, merged with a user's, and that the
convolution flag changes no result (the barrier flag's effect on memory: test_remat.py)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import run_python_json
from gqn_jax import xla_flags


def test_flag_is_added_once_and_merged_with_a_users_pass_list():
  flag = "--xla_disable_hlo_passes=" + xla_flags.PASS
  assert xla_flags.with_barriers_kept("") == flag
  assert xla_flags.with_barriers_kept("--xla_force_host_platform_device_count=8") == (
      "--xla_force_host_platform_device_count=8 " + flag)
  assert xla_flags.with_barriers_kept("--xla_disable_hlo_passes=a,b --x=1") == (
      f"--xla_disable_hlo_passes=a,b,{xla_flags.PASS} --x=1")
  once = xla_flags.with_barriers_kept("--y=2")
  assert xla_flags.with_barriers_kept(once) == once
  # conftest.py set it for this process, as the entry points do (where JAX runs on the CPU only).
  expected = xla_flags.cpu_only(os.environ.get("JAX_PLATFORMS", ""),
                                xla_flags.installed_distributions())
  assert (xla_flags.PASS in os.environ.get("XLA_FLAGS", "")) == expected


def test_conv_flag_only_for_known_jaxlibs_and_never_over_a_users_ynn_list():
  known = xla_flags.CONV_FLAG_JAXLIBS[-1]
  assert xla_flags.with_eigen_convolutions("--x=1", known) == "--x=1 " + xla_flags.CONV_FLAG
  assert xla_flags.with_eigen_convolutions("--x=1", "99.0.0") == "--x=1"
  assert xla_flags.with_eigen_convolutions("--x=1", None) == "--x=1"
  users = "--xla_cpu_experimental_ynn_fusion_type=dot"
  assert xla_flags.with_eigen_convolutions(users, known) == users
  both = xla_flags.with_cpu_flags("", known)
  assert xla_flags.with_cpu_flags(both, known) == both
  assert set(both.split()) == {"--xla_disable_hlo_passes=" + xla_flags.PASS, xla_flags.CONV_FLAG}


_CONV_AND_GRADIENTS = """
    import json
    import jax, jax.numpy as jnp
    from gqn_jax import cpu_kernels
    x = jax.random.normal(jax.random.key(0), (8, 16, 16, 24))
    w = jax.random.normal(jax.random.key(1), (3, 3, 24, 16)) / 15
    loss = lambda x, w: jnp.sum(jnp.sin(cpu_kernels.xla_conv(x, w)))
    out, (gx, gw) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(x, w)
    print(json.dumps({"loss": float(out), "gx": gx.ravel()[::97].tolist(),
                      "gw": gw.ravel()[::7].tolist()}))
"""


@pytest.mark.skipif(xla_flags.installed_jaxlib() not in xla_flags.CONV_FLAG_JAXLIBS,
                    reason="CONV_FLAG is only set for the jaxlib versions that know it")
def test_eigen_convolutions_compute_what_ynnpack_computes():
  """The installed XLA accepts CONV_FLAG, and a convolution and both its gradients agree with
  the default kernels' to float32 rounding."""
  ynnpack = run_python_json(_CONV_AND_GRADIENTS)
  eigen = run_python_json(_CONV_AND_GRADIENTS, env_xla_flags=xla_flags.CONV_FLAG)
  np.testing.assert_allclose(eigen["loss"], ynnpack["loss"], rtol=1e-5)
  for name in ("gx", "gw"):  # sums of 2,048 products: rounding scales with the largest entry
    scale = np.max(np.abs(ynnpack[name]))
    np.testing.assert_allclose(eigen[name], ynnpack[name], rtol=1e-4, atol=1e-5 * scale)


def test_flag_is_set_only_where_jax_can_run_on_nothing_but_the_cpu():
  plain = ["numpy", "jax", "jaxlib"]
  assert xla_flags.cpu_only("", plain)
  assert not xla_flags.cpu_only("", plain + ["jax-cuda12-plugin", "jax-cuda12-pjrt"])
  assert not xla_flags.cpu_only("", plain + ["libtpu"])
  assert xla_flags.cpu_only("cpu", plain + ["jax-cuda12-plugin"])  # asked for the CPU only
  assert not xla_flags.cpu_only("cuda,cpu", plain)


def test_importing_gqn_jax_sets_no_flag_and_the_explicit_call_does():
  env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}
  show = "import os; print(repr(os.environ.get('XLA_FLAGS')))"
  imported = subprocess.run(
      [sys.executable, "-c", f"import gqn_jax, gqn_jax.trainer, gqn_jax.evaluation; {show}"],
      env=env, capture_output=True, text=True, timeout=300, check=True)
  assert imported.stdout.strip() == repr("")
  called = subprocess.run(
      [sys.executable, "-c", f"from gqn_jax import xla_flags; xla_flags.set_cpu_flags(); "
                             f"{show}"],
      env=env, capture_output=True, text=True, timeout=300, check=True)
  assert xla_flags.PASS in called.stdout
  assert (xla_flags.CONV_FLAG in called.stdout) == (
      xla_flags.installed_jaxlib() in xla_flags.CONV_FLAG_JAXLIBS)
  elsewhere = subprocess.run(
      [sys.executable, "-c", f"from gqn_jax import xla_flags; xla_flags.set_cpu_flags(); "
                             f"{show}"],
      env={**env, "JAX_PLATFORMS": "cuda"}, capture_output=True, text=True, timeout=300,
      check=True)
  assert elsewhere.stdout.strip() == repr("")


@pytest.mark.parametrize("module", ["train", "evaluate", "render", "probe"])
def test_every_jax_entry_point_sets_the_flags_before_it_runs(module):
  """gqn-train, gqn-evaluate, gqn-render and gqn-probe each set XLA's CPU flags before their
  main starts JAX (absl's app.run, which would call main, stands in for it here)."""
  env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}
  code = (f"import os; from absl import app; from gqn_jax import {module}; "
          f"app.run = lambda *args: print(repr(os.environ.get('XLA_FLAGS'))); {module}.run()")
  shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300, check=True)
  assert xla_flags.PASS in shown.stdout
