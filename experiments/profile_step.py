r"""Where the reference model's CPU train step spends its time, by kind of XLA operation.

  make profile-reference    # .venv/bin/python -m experiments.profile_step

Compiles the step `make bench-reference` times (gqn_jax/configs/reference.py's model, batch 16,
5 context views), times it without the profiler, then records a few steps with
``jax.profiler`` and sums the recorded time of each operation XLA's CPU runtime executed, by
kind:

* matmul: a dot (the core convolutions as patch matmuls, the r and pose convolutions, the
  attention), in XLA's CPU runtime a YNNPACK fusion that runs on every core;
* convolution: XLA's own (the representation network's 3x3 convolutions);
* elementwise and reductions: fusions with arithmetic in them (the LSTM gates, the Gaussians,
  Adam, the col2im accumulation);
* data movement: copies, concatenations, slices, pads, transposes, broadcasts (building the
  patch matrices, relayouts).

A recorded operation's time is its wall time on the thread that ran it; matmuls use every core
at once and small operations one, so the column is a share of recorded time, not of cores. The
profile's own overhead makes the profiled steps somewhat slower than the timed ones. Results:
JSON at ``--output`` (default experiments/results/profile_reference.json) and a markdown table
beside it.
"""

import collections
import re
import statistics
import tempfile
import time

from experiments import harness

# Operations that only contain others (their time is that of their contents) or are the
# runtime's bookkeeping.
_CONTAINERS = ("while", "call", "conditional", "ThunkExecutor", "ThreadpoolListener", "Slinky",
               "end: ")
_ARITHMETIC = {"multiply", "divide", "subtract", "exponential", "log", "tanh", "logistic",
               "maximum", "minimum", "reduce", "reduce-window", "power", "sqrt", "rsqrt", "select",
               "compare", "negate", "abs", "exponential-minus-one", "log-plus-one", "add",
               "convert", "clamp", "and", "or", "floor", "sign", "cosine", "sine", "atan2",
               "erf", "all-reduce", "rng-bit-generator", "xor", "shift-right-logical", "iota"}
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.-]+) = .*?\s([a-z][\w-]*)\(")
_CALLS = re.compile(r"calls=%?([\w.-]+)")
_OP_NAME = re.compile(r'op_name="([^"]*)"')


def hlo_kinds(hlo_text: str) -> dict[str, tuple[str, str]]:
  """instruction name -> (kind, JAX op path) for every instruction of the compiled module."""
  bodies, instructions, current = collections.defaultdict(set), {}, None
  for line in hlo_text.splitlines():
    if line and not line[0].isspace() and line.rstrip().endswith("{"):
      current = line.split()[0].lstrip("%") if not line.startswith("ENTRY") else line.split()[1]
      continue
    match = _INSTRUCTION.match(line)
    if not match:
      continue
    name, opcode = match.groups()
    bodies[current].add(opcode)
    calls = _CALLS.search(line)
    op_name = _OP_NAME.search(line)
    instructions[name] = (opcode, calls.group(1) if calls else None,
                          op_name.group(1) if op_name else "")
  kinds = {}
  for name, (opcode, called, op_name) in instructions.items():
    ops = bodies.get(called, set()) if opcode == "fusion" and called else {opcode}
    if "dot" in ops:
      kind = "matmul"
    elif "convolution" in ops:
      kind = "convolution"
    elif ops & _ARITHMETIC:
      kind = "elementwise and reductions"
    else:
      kind = "data movement"
    kinds[name] = (kind, op_name)
  return kinds


def recorded_ops(trace_dir: str) -> list[tuple[str, float]]:
  """(operation name, seconds) of every operation event XLA's CPU runtime recorded."""
  import glob  # pylint: disable=g-import-not-at-top
  from jax.profiler import ProfileData  # pylint: disable=g-import-not-at-top
  files = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)
  if not files:
    raise RuntimeError(f"jax.profiler wrote no trace under {trace_dir}")
  events = []
  for plane in ProfileData.from_file(files[0]).planes:
    for line in plane.lines:
      if line.name == "python":
        continue
      events += [(event.name, event.duration_ns * 1e-9) for event in line.events
                 if not event.name.startswith(_CONTAINERS)]
  return events


def profile(model: dict, batch_size: int, context_views: int, timed_steps: int,
            profiled_steps: int, top: int) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  from experiments import benchmark  # pylint: disable=g-import-not-at-top
  built = benchmark.compiled_jax_step(model, batch_size, context_views)
  compiled, holder = built["compiled"], [built["state"]]

  def run():
    holder[0], metrics = compiled(holder[0], built["batch"], built["key"])
    float(metrics["loss"])

  step_s = statistics.median(harness.timed(run, 2, timed_steps))
  with tempfile.TemporaryDirectory() as trace_dir:
    jax.profiler.start_trace(trace_dir)
    start = time.perf_counter()
    for _ in range(profiled_steps):
      run()
    profiled_step_s = (time.perf_counter() - start) / profiled_steps
    jax.profiler.stop_trace()
    events = recorded_ops(trace_dir)
  kinds = hlo_kinds(compiled.as_text())
  by_kind, count, by_op = collections.Counter(), collections.Counter(), collections.Counter()
  for name, seconds in events:
    kind = kinds.get(name, ("other", ""))[0]
    by_kind[kind] += seconds / profiled_steps
    count[kind] += 1 / profiled_steps
    by_op[name] += seconds / profiled_steps
  return {
      "step_s": step_s, "profiled_step_s": profiled_step_s,
      "recorded_s_per_step": sum(by_kind.values()),
      "kinds": [{"kind": kind, "s_per_step": seconds, "ops_per_step": round(count[kind])}
                for kind, seconds in by_kind.most_common()],
      "top_ops": [{"op": name, "kind": kinds.get(name, ("other", ""))[0],
                   "jax_op": kinds.get(name, ("", ""))[1], "s_per_step": seconds}
                  for name, seconds in by_op.most_common(top)],
  }


def table(result: dict, machine: str) -> str:
  total = result["recorded_s_per_step"]
  lines = [f"Machine: {machine}. Train step {result['step_s'] * 1e3:.0f} ms (median, no "
           f"profiler; {result['profiled_step_s'] * 1e3:.0f} ms while profiled); operations "
           f"recorded per step: {total * 1e3:.0f} ms.", "",
           "| kind | ms per step | share of recorded time | operations per step |",
           "|---|---|---|---|"]
  lines += [f"| {k['kind']} | {k['s_per_step'] * 1e3:.1f} | {k['s_per_step'] / total:.0%} | "
            f"{k['ops_per_step']} |" for k in result["kinds"]]
  lines += ["", "| operation | kind | ms per step | from |", "|---|---|---|---|"]
  lines += [f"| {o['op']} | {o['kind']} | {o['s_per_step'] * 1e3:.1f} | "
            f"{'/'.join(o['jax_op'].split('/')[-3:])} |" for o in result["top_ops"]]
  return "\n".join(lines) + "\n"


def main(argv=None) -> None:
  harness.prepare_process()
  parser = harness.parser(__doc__, "profile_reference.json")
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--timed_steps", type=int, default=10)
  parser.add_argument("--profiled_steps", type=int, default=5)
  parser.add_argument("--top", type=int, default=12, help="operations listed one by one")
  args = parser.parse_args(argv)
  from experiments import benchmark  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  if jax.default_backend() != "cpu":
    raise SystemExit(f"this profile reads XLA's CPU runtime; JAX runs on {jax.default_backend()}")
  result = profile(benchmark.reference_model(), args.batch, 5, args.timed_steps,
                   args.profiled_steps, args.top)
  result["machine"] = harness.machine()
  text = table(result, result["machine"])
  print(text)
  harness.write_results(args.output, result, text)


if __name__ == "__main__":
  main()
