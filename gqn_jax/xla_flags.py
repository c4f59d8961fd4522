"""XLA flags the entry points set on CPU-only hosts: remat's barriers, Eigen convolutions.

1. Remat. ``jax.checkpoint`` stops XLA from merging the backward pass's recomputation with the
forward pass (which would keep the forward's values alive after all) by wrapping the saved
inputs in optimization barriers. XLA's CPU pipeline removes every barrier in one of its first
passes (``cse_barrier_expander``) and its common-subexpression elimination then merges the two
computations: on the CPU, a checkpoint outside a loop saves nothing (tests/test_remat.py shows
it). Recomputation inside a scan's body still works, since the forward and backward loops cannot
be merged. Disabling that one pass keeps the barriers; it is appended to a pass list the user
already gives (``--xla_disable_hlo_passes=a,b``).

2. Convolutions. jaxlib 0.10's CPU backend hands each convolution to YNNPACK, which runs the
representation network's 3x3 convolutions and their gradients more slowly than XLA's own
(Eigen) convolutions on x86 (``experiments/benchmark.py --suite=reference``: its
``reference-ynn-convs`` row is the reference step without this flag). ``CONV_FLAG`` takes
convolutions off YNNPACK's list and leaves its matmuls, which are fast, on it. The flag's
value must be one the installed XLA knows (an unknown one aborts the process), so it is only
added for the jaxlib versions in ``CONV_FLAG_JAXLIBS``, and never over a
``--xla_cpu_experimental_ynn_fusion_type`` the user gives.

The GPU and TPU pipelines run the barrier pass only at their end, after every CSE, and have no
YNNPACK, so both flags are set only where JAX can run on nothing but the CPU
(``JAX_PLATFORMS=cpu``, or no GPU or TPU plugin installed), leaving accelerator compilers as
they ship. XLA reads ``XLA_FLAGS`` once, when JAX first starts a backend, so ``set_cpu_flags``
must run before any JAX computation: every console script calls it first thing (in
``cli.run``), as do the benchmarks, and so should any other program that wants remat to save
memory, or the faster convolutions, on the CPU. Importing gqn_jax sets nothing.
"""

import importlib.metadata
import os

PASS = "cse_barrier_expander"
_FLAG = "--xla_disable_hlo_passes="
_YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type="
CONV_FLAG = _YNN_FLAG + "-individual_convolution"
# jaxlib versions whose XLA knows CONV_FLAG's value (checked in each wheel's library).
CONV_FLAG_JAXLIBS = ("0.10.0", "0.10.1", "0.10.2")


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


def with_eigen_convolutions(xla_flags: str, jaxlib_version: str | None) -> str:
  """``xla_flags`` with ``CONV_FLAG`` added, where ``jaxlib_version`` knows it and the flags set
  no YNN fusion types of their own."""
  if jaxlib_version not in CONV_FLAG_JAXLIBS or _YNN_FLAG in xla_flags:
    return xla_flags
  return " ".join(xla_flags.split() + [CONV_FLAG])


def with_cpu_flags(xla_flags: str, jaxlib_version: str | None) -> str:
  """``xla_flags`` with both CPU flags (``with_barriers_kept``, ``with_eigen_convolutions``)."""
  return with_eigen_convolutions(with_barriers_kept(xla_flags), jaxlib_version)


def installed_jaxlib() -> str | None:
  try:
    return importlib.metadata.version("jaxlib")
  except importlib.metadata.PackageNotFoundError:
    return None


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


def set_cpu_flags() -> None:
  """Adds both flags to this process's ``XLA_FLAGS`` (inherited by its child processes) where JAX
  can only run on the CPU. Call it before JAX starts a backend: XLA reads the flags once."""
  if on_cpu_only():
    os.environ["XLA_FLAGS"] = with_cpu_flags(os.environ.get("XLA_FLAGS", ""), installed_jaxlib())
