"""What every benchmark in experiments/ shares: process set-up, isolation, timing, memory, flags
and results. Standard library only (the accelerator script runs where little else is installed).

A benchmark is a module with a ``main(argv=None)`` that defines its cases and calls these::

  python -m experiments.benchmark --suite=reference   # always from the repository root

* ``prepare_process()``: what gqn-train does before JAX starts on a CPU-only host (tcmalloc,
  remat's barriers), so a benchmark measures the program training runs.
* ``isolated(fn, *args)``: ``fn`` in a fresh spawned process, so its peak memory and compile
  caches are its own; ``timeout_s`` stops it.
* ``timed(fn, warmup, repeats)``: per-call wall times after warm-up; the peak resident set is
  reset after warm-up, so ``rss_peak_since_reset_mib()`` is the timed calls' own peak.
* ``parser(doc)`` and ``write_results(...)``: the flags every benchmark has (``--output``) and
  a JSON file with a markdown table beside it, where docs/performance.md reads them.
"""

import argparse
import json
import multiprocessing
import os
import pathlib
import platform
import queue as queue_lib
import resource
import statistics
import time

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def prepare_process() -> None:
  """tcmalloc and the CPU remat flag, as the gqn_jax entry points set them (both modules say
  why); child processes inherit both. Call it first thing, before JAX starts."""
  from gqn_jax import allocator  # pylint: disable=g-import-not-at-top
  from gqn_jax import xla_flags  # pylint: disable=g-import-not-at-top
  allocator.use_tcmalloc()
  xla_flags.set_cpu_flags()


# --- isolation ----------------------------------------------------------------------------------

def _child(out, fn, args):
  try:
    out.put(("ok", fn(*args)))
  except Exception as error:  # pylint: disable=broad-except
    out.put(("error", f"{type(error).__name__}: {error}"))


def isolated(fn, *args, timeout_s: float | None = None):
  """fn(*args) in a fresh spawned (not forked) process; raises its error, or TimeoutError."""
  context = multiprocessing.get_context("spawn")
  out = context.Queue()
  process = context.Process(target=_child, args=(out, fn, args))
  process.start()
  try:
    status, result = out.get(timeout=None if timeout_s is None else max(timeout_s, 1.0))
  except queue_lib.Empty:
    process.kill()
    process.join()
    raise TimeoutError(f"no result within {timeout_s:.0f} s") from None
  process.join()
  if status != "ok":
    raise RuntimeError(result)
  return result


# --- timing -------------------------------------------------------------------------------------

def timed(fn, warmup: int, repeats: int) -> list[float]:
  """Seconds of each of ``repeats`` calls of fn() after ``warmup`` calls (fn must block until
  its work is done)."""
  for _ in range(warmup):
    fn()
  reset_peak_rss()
  durations = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    durations.append(time.perf_counter() - start)
  return durations


def median_seconds(fn, *args, repeats: int, warmup: int = 1) -> float:
  """Median seconds of a JAX function's call, waiting for its result."""
  import jax  # pylint: disable=g-import-not-at-top
  return statistics.median(timed(lambda: jax.block_until_ready(fn(*args)), warmup, repeats))


def cpu_seconds() -> float:
  """CPU time of this process and its finished children: unlike wall time, not stretched by
  other users of a shared machine."""
  own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                       resource.RUSAGE_CHILDREN))
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# --- memory -------------------------------------------------------------------------------------

# The high-water mark before the last reset: Linux derives getrusage's peak from the same mark
# that reset_peak_rss restarts, so the lifetime peak must be kept here.
_PEAK_BEFORE_RESET_MIB = 0.0


def peak_rss_mib() -> float:
  """This process's peak resident set over its whole life, resets included."""
  current = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
  return max(current, _PEAK_BEFORE_RESET_MIB)


def reset_peak_rss() -> bool:
  """Restarts the kernel's peak-RSS count (VmHWM) of this process (Linux 4.0+)."""
  global _PEAK_BEFORE_RESET_MIB
  _PEAK_BEFORE_RESET_MIB = peak_rss_mib()
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
    return True
  except OSError:
    return False


def rss_peak_since_reset_mib() -> float | None:
  """Peak RSS since the last ``reset_peak_rss()`` (None where /proc is absent)."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024.0
  except OSError:
    pass
  return None


def device_peak_mib(device) -> float | None:
  """A JAX accelerator allocator's peak bytes in use over the whole process (None on the CPU,
  whose memory the resident-set figures count; JAX cannot reset it)."""
  stats = device.memory_stats()
  if not stats or "peak_bytes_in_use" not in stats:
    return None
  return stats["peak_bytes_in_use"] / 2**20


# The CPU features that decide which float32 and bfloat16 kernels XLA and PyTorch can run: on a
# host without avx512_bf16 / amx_bf16, bfloat16 matmuls are emulated and far slower.
_ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_description(cpuinfo: str) -> str:
  """'<model name> (<ISA flags of _ISA_FLAGS it has>)' from /proc/cpuinfo's text."""
  fields = dict(line.split(":", 1) for line in cpuinfo.splitlines() if ":" in line)
  fields = {key.strip(): value.strip() for key, value in fields.items()}
  flags = set(fields.get("flags", "").split())
  isa = [flag for flag in _ISA_FLAGS if flag in flags]
  model = fields.get("model name") or platform.machine()
  return f"{model} ({', '.join(isa) if isa else 'none of ' + ', '.join(_ISA_FLAGS)})"


def machine() -> str:
  """The processor (model and vector ISA), core count and allocator, for a results table's
  first line: results from hosts of another processor are not comparable."""
  malloc = "tcmalloc" if "tcmalloc" in os.environ.get("LD_PRELOAD", "") else "system"
  try:
    processor = cpu_description(pathlib.Path("/proc/cpuinfo").read_text())
  except OSError:  # not Linux
    processor = platform.processor() or platform.machine()
  return f"{processor}, {multiprocessing.cpu_count()} cores, {malloc} malloc"


# --- flags and results --------------------------------------------------------------------------

def parser(doc: str, output: str | None = None) -> argparse.ArgumentParser:
  """An argument parser described by the module docstring's first paragraph, with ``--output``
  (default ``output`` under experiments/results/, when given)."""
  result = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  result.add_argument("--output", type=pathlib.Path,
                      default=RESULTS / output if output else None,
                      help="JSON file of the results" + (f" (default: experiments/results/"
                                                          f"{output})" if output else ""))
  return result


def write_results(output: pathlib.Path | None, results, table: str | None = None) -> None:
  """results as JSON at ``output`` and ``table`` (markdown) beside it, .md; nothing if no path."""
  if output is None:
    return
  output.parent.mkdir(parents=True, exist_ok=True)
  output.write_text(json.dumps(results, indent=1) + "\n")
  if table is not None:
    output.with_suffix(".md").write_text(table)
