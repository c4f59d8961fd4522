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
so ``keep_remat_barriers`` runs when ``gqn_jax`` is imported: import it before running any JAX
computation. The pass list is appended to one the user already gives
(``--xla_disable_hlo_passes=a,b``).
"""

import importlib.metadata
import os
import warnings

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


def _installed_distributions() -> list[str]:
  return [(d.metadata["Name"] or "").lower().replace("_", "-")
          for d in importlib.metadata.distributions()]


def cpu_only(jax_platforms: str, distributions: list[str]) -> bool:
  """Whether JAX can only run on the CPU: ``JAX_PLATFORMS`` names nothing else, or (unset) no
  accelerator plugin is installed."""
  if jax_platforms.strip():
    return all(p.strip() in ("cpu", "") for p in jax_platforms.split(","))
  return not any(name.startswith(_ACCELERATOR_DISTRIBUTIONS) for name in distributions)


def _backends_started() -> bool:
  """Whether JAX has started a backend (and so read XLA_FLAGS); False where JAX cannot say."""
  try:
    from jax._src import xla_bridge  # pylint: disable=import-outside-toplevel
    return xla_bridge.backends_are_initialized()
  except (ImportError, AttributeError):  # a private API: absent in some JAX version
    return False


def keep_remat_barriers() -> None:
  """Adds the flag to this process's ``XLA_FLAGS`` (inherited by its child processes) where JAX
  can only run on the CPU; warns if JAX has already read them."""
  if not cpu_only(os.environ.get("JAX_PLATFORMS", ""), _installed_distributions()):
    return
  flags = os.environ.get("XLA_FLAGS", "")
  if PASS not in flags and _backends_started():
    warnings.warn(
        "gqn_jax was imported after JAX started its CPU backend, so XLA will not see "
        f"--xla_disable_hlo_passes={PASS} and remat=True saves little memory on the CPU. "
        "Import gqn_jax before running any JAX computation, or set that flag in XLA_FLAGS "
        "before starting Python.", stacklevel=3)
  os.environ["XLA_FLAGS"] = with_barriers_kept(flags)
