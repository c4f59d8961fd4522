"""Runs a CPU training or evaluation process under tcmalloc, when it is installed.

Why: XLA's CPU runtime allocates each step's outputs and temporaries afresh. Under glibc's
malloc, buffers that large are fresh ``mmap``s, so every step pays a page fault per 4 KiB page it
writes (gigabytes of gradients, Adam moments and temporaries in the paper step); tcmalloc keeps
freed memory for the next step. ``experiments/benchmark.py`` runs under it and names the
allocator in its table; with ``GQN_JAX_ALLOCATOR=system`` it measures glibc, for comparison
(docs/performance.md, "Notes on the CPU", gives the command; no current result file holds the
comparison). Debian/Ubuntu: ``apt-get install libtcmalloc-minimal4`` (``make setup`` does it as
root).

The allocator must be chosen before the process starts, so ``use_tcmalloc`` re-executes the
program once with the library in ``LD_PRELOAD``; the command-line entry points call it first
thing (importing gqn_jax does not). It does so only where JAX can run on nothing but the CPU
(``xla_flags.on_cpu_only``): GPU and TPU hosts keep their allocator. Set
``GQN_JAX_ALLOCATOR=system`` to opt out.
"""

import os
import sys

from gqn_jax import xla_flags

ENV_VAR = "GQN_JAX_ALLOCATOR"
_LIBRARIES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
_DIRECTORIES = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64",
                "/usr/lib", "/usr/local/lib")


def find_tcmalloc() -> str | None:
  """The path of an installed tcmalloc shared library, or None."""
  for directory in _DIRECTORIES:
    for library in _LIBRARIES:
      path = os.path.join(directory, library)
      if os.path.exists(path):
        return path
  return None


def active() -> str:
  """'tcmalloc' when this process runs with tcmalloc preloaded, else 'system'."""
  return "tcmalloc" if "tcmalloc" in os.environ.get("LD_PRELOAD", "") else "system"


def use_tcmalloc() -> None:
  """Re-executes this program with tcmalloc preloaded; returns where that is not wanted or
  possible (opted out, already preloaded, JAX may run on a GPU or TPU, not installed, not
  started from a command line).

  Call it first thing in a command-line entry point, never from library code or tests: on
  success it does not return (the process image is replaced; the pid and arguments stay).
  """
  if os.environ.get(ENV_VAR, "tcmalloc") == "system" or active() == "tcmalloc":
    return
  if not xla_flags.on_cpu_only():
    return
  path = find_tcmalloc()
  argv = getattr(sys, "orig_argv", None)
  if path is None or not argv:
    return
  preload = " ".join(filter(None, [path, os.environ.get("LD_PRELOAD")]))
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *argv[1:]], {**os.environ, "LD_PRELOAD": preload})
