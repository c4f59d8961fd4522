"""Keeps ``jax.checkpoint``'s optimization barriers in XLA's CPU compiler, so remat saves memory.

``jax.checkpoint`` stops XLA from merging the backward pass's recomputation with the forward
pass (which would keep the forward's values alive after all) by wrapping the saved inputs in
optimization barriers. XLA's CPU pipeline removes every barrier in one of its first passes
(``cse_barrier_expander``) and its common-subexpression elimination then merges the two
computations: on the CPU, a checkpoint outside a loop saves nothing (tests/test_remat.py shows
it). Recomputation inside a scan's body still works, since the forward and backward loops
cannot be merged.

Disabling that one pass keeps the barriers. The GPU and TPU pipelines run the same pass only
at their end, after every CSE, so they need no flag; it is set only where JAX can run on nothing
but the CPU (``JAX_PLATFORMS=cpu``, or no GPU or TPU plugin installed), to leave accelerator
compilers exactly as they ship. XLA reads ``XLA_FLAGS`` once, when JAX first starts a backend,
so ``keep_remat_barriers`` must run before any JAX computation: the command-line entry points
(gqn-train, gqn-evaluate, the benchmarks) call it first thing, and so should any other program
that wants remat to save memory on the CPU. Importing gqn_jax sets nothing. The pass list is
appended to one the user already gives (``--xla_disable_hlo_passes=a,b``).
"""

import importlib.metadata
import os

PASS = "cse_barrier_expander"
_FLAG = "--xla_disable_hlo_passes="


def with_barriers_kept(xla_flags: str) -> str:
  """``xla_flags`` with ``PASS`` added to its disabled passes (unchanged if already there)."""
  flags = xla_flags.split()
  for i, flag in enumerate(flags):
    if flag.startswith(_FLAG):
      passes = [p for p in flag[len(_FLAG):].split(",") if p]
      if PASS not in passes:
        flags[i] = _FLAG + ",".join(passes + [PASS])
      return " ".join(flags)
  return " ".join(flags + [_FLAG + PASS])


# pip distributions that give JAX a GPU or TPU backend.
_ACCELERATOR_DISTRIBUTIONS = ("jax-cuda", "jax-rocm", "libtpu")


def installed_distributions() -> list[str]:
  return [(d.metadata["Name"] or "").lower().replace("_", "-")
          for d in importlib.metadata.distributions()]


def cpu_only(jax_platforms: str, distributions: list[str]) -> bool:
  """Whether JAX can only run on the CPU: ``JAX_PLATFORMS`` names nothing else, or (unset) no
  accelerator plugin is installed."""
  if jax_platforms.strip():
    return all(p.strip() in ("cpu", "") for p in jax_platforms.split(","))
  return not any(name.startswith(_ACCELERATOR_DISTRIBUTIONS) for name in distributions)


def on_cpu_only() -> bool:
  """``cpu_only`` for this process's environment and installed distributions."""
  return cpu_only(os.environ.get("JAX_PLATFORMS", ""), installed_distributions())


def keep_remat_barriers() -> None:
  """Adds the flag to this process's ``XLA_FLAGS`` (inherited by its child processes) where JAX
  can only run on the CPU. Call it before JAX starts a backend: XLA reads the flags once."""
  if on_cpu_only():
    os.environ["XLA_FLAGS"] = with_barriers_kept(os.environ.get("XLA_FLAGS", ""))
