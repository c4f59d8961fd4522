"""experiments/harness.py, the benchmarks' shared parts: isolation, timing, memory, results."""

import json
import os

import pytest

from experiments import harness


def _pid_and_square(x):
  return os.getpid(), x * x


def _fails():
  raise ValueError("bad case")


def _sleeps(seconds):
  import time  # pylint: disable=import-outside-toplevel
  time.sleep(seconds)


def test_isolated_runs_in_another_process_and_returns_or_raises_its_result():
  pid, square = harness.isolated(_pid_and_square, 7)
  assert square == 49 and pid != os.getpid()
  with pytest.raises(RuntimeError, match="ValueError: bad case"):
    harness.isolated(_fails)
  with pytest.raises(TimeoutError, match="no result within"):
    harness.isolated(_sleeps, 60, timeout_s=1)


def test_timed_calls_warmup_plus_repeats_times_and_measures_each_call():
  calls = []
  durations = harness.timed(lambda: calls.append(1), warmup=2, repeats=3)
  assert len(calls) == 5 and len(durations) == 3 and all(d >= 0 for d in durations)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_reset_restarts_the_step_peak_but_not_the_lifetime_peak():
  big = bytearray(200 * 2**20)  # touched: 200 MiB resident
  big[::4096] = b"x" * len(big[::4096])
  del big
  before_reset = harness.rss_peak_since_reset_mib()
  assert before_reset >= 200
  assert harness.reset_peak_rss()
  after_reset = harness.rss_peak_since_reset_mib()
  assert after_reset < before_reset - 150  # the freed 200 MiB are not counted...
  assert harness.peak_rss_mib() >= before_reset  # ...except in the lifetime peak
  more = bytearray(100 * 2**20)
  more[::4096] = b"y" * len(more[::4096])
  assert harness.rss_peak_since_reset_mib() >= after_reset + 90
  del more


def test_results_round_trip_with_the_table_beside_them(tmp_path):
  output = tmp_path / "sub" / "bench.json"
  harness.write_results(output, {"records": [1, 2]}, "| a |\n")
  assert json.loads(output.read_text()) == {"records": [1, 2]}
  assert output.with_suffix(".md").read_text() == "| a |\n"
  harness.write_results(None, {"ignored": True})  # no path: nothing written, no error


def test_parser_defaults_output_into_the_results_folder():
  parser = harness.parser("First paragraph.\n\nMore.", output="x.json")
  assert parser.parse_args([]).output == harness.RESULTS / "x.json"
  assert parser.description == "First paragraph."
  assert harness.parser("Doc.").parse_args([]).output is None


def test_cpu_description_names_the_model_and_the_vector_isa():
  """The processor model and which of the ISA flags that decide the kernels it has."""
  cpuinfo = ("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx2 fma\n\n"
             "processor\t: 1\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx2 fma\n")
  assert harness.cpu_description(cpuinfo) == "AMD EPYC 7B13 (avx2)"
  sapphire = "model name : Intel Xeon\nflags : avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
  assert harness.cpu_description(sapphire) == "Intel Xeon (avx2, avx512f, avx512_bf16, amx_bf16)"
