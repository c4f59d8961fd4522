"""The CLI entry points re-execute themselves under tcmalloc, once, on CPU-only hosts, unless
told not to."""

import os
import subprocess
import sys

import pytest

from gqn_jax import allocator

_PROGRAM = """
from gqn_jax import allocator
allocator.use_tcmalloc()
maps = open('/proc/self/maps').read()
print(allocator.active(), 'libtcmalloc' in maps, flush=True)
"""


def _run(**env):
  environment = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", allocator.ENV_VAR)}
  out = subprocess.run([sys.executable, "-c", _PROGRAM], env=environment | env, check=True,
                       capture_output=True, text=True).stdout
  return out.split()


@pytest.mark.skipif(allocator.find_tcmalloc() is None or not os.path.exists("/proc/self/maps"),
                    reason="tcmalloc not installed (apt-get install libtcmalloc-minimal4)")
def test_reexecutes_with_tcmalloc_loaded():
  # One line of output: the program ran once more under tcmalloc, not twice.
  assert _run() == ["tcmalloc", "True"]


def test_opting_out_keeps_the_system_allocator():
  assert _run(**{allocator.ENV_VAR: "system"}) == ["system", "False"]


def test_hosts_where_jax_may_run_on_an_accelerator_keep_their_allocator():
  assert _run(JAX_PLATFORMS="cuda") == ["system", "False"]
