"""Train-step speed, compile time and memory of gqn_jax, and of the PyTorch baseline beside it.

  make bench          # .venv/bin/python -m experiments.benchmark (suite cpu)
  make bench-gpu      # on a machine with an NVIDIA GPU: installs JAX's CUDA build, --suite=gpu
  .venv/bin/python -m experiments.benchmark --suite=smoke --output=/tmp/smoke.json  # a check

Every measurement runs in a fresh process (so its peak resident memory is its own), gqn_jax and
PyTorch alternating case by case, so that load from elsewhere hits both alike. A record:

  {impl, case, config, batch, context_views, steps_per_s, scenes_per_s, step_s (median),
   compile_s, peak_mem_mib, step_peak_mem_mib, device_peak_mem_mib, flops_per_step,
   achieved_gflops, fraction_of_matmul_peak}

peak_mem_mib is the process's peak resident set, step_peak_mem_mib the same over the timed
steps only. device_peak_mem_mib is an accelerator's own memory (None on the CPU): JAX's
allocator peak over the whole process, PyTorch's caching allocator peak over the timed steps.
The "gpu" suite's cases fail, saying what to install, where either framework sees no GPU.

``flops_per_step`` is XLA's cost analysis of the same step compiled with the scan fully
unrolled: cost analysis counts a while loop's body once, so the scanned program's own count is
~L times too small. ``fraction_of_matmul_peak`` divides the achieved rate by the rate of a large
float32 matmul measured in the same run. Results (experiments/harness.py): JSON at ``--output``
(default: the suite's file in experiments/results/, ``RESULT_FILES``) and a markdown table
beside it, which docs/performance.md quotes.

Both implementations run under the same allocator: tcmalloc where installed (see
gqn_jax/allocator.py), glibc's with ``GQN_JAX_ALLOCATOR=system``; the table's first line says
which.
"""

import dataclasses
import json
import os
import statistics
import time

from experiments import harness
from gqn_jax.config import ModelConfig

PAPER = {}  # ModelConfig() is the paper's architecture.
# A small model: the demo's shape with 64-channel cores (gqn_jax/configs/demo.py uses 32).
SMALL = dict(image_size=32, representation="pool", r_channels=128, steps=6, hidden_channels=64,
             canvas_channels=64)


def reference_model() -> dict:
  """The reference model's architecture (gqn_jax/configs/reference.py), less its data fields."""
  from gqn_jax.configs import reference  # pylint: disable=g-import-not-at-top
  return reference.get_config().model.to_dict()


@dataclasses.dataclass(frozen=True)
class Case:
  name: str
  model: dict
  batch: int
  context_views: int = 5
  impls: tuple = ("gqn_jax", "pytorch")
  flops: bool = True          # also compile the unrolled step for its FLOP count.
  compile_only: bool = False  # measure compile time only (no steps).
  device: str = "cpu"         # "gpu": both implementations must run on a GPU, or fail saying so.
  ynn_convolutions: bool = False  # gqn_jax without xla_flags.CONV_FLAG: YNNPACK's convolutions.


SUITES = {
    # This 2-core CPU: the paper architecture at a small batch, a small model, the scan's
    # compile time against L, and what each of our speed and memory options buys.
    "cpu": [
        Case("paper-tower", PAPER, batch=4),
        Case("paper-pool", dict(representation="pool"), batch=4),
        Case("paper-tower-remat", dict(remat=True), batch=4, impls=("gqn_jax",), flops=False),
        # bfloat16 compute (float32 parameters) in both: PyTorch under autocast.
        Case("paper-tower-bf16", dict(dtype="bfloat16"), batch=4, flops=False),
        Case("small-64ch", SMALL, batch=16),
        Case("paper-tower-L2", dict(steps=2), batch=4, impls=("gqn_jax",), flops=False),
        Case("paper-tower-L2-xla-conv-grads", dict(steps=2, conv_backend="xla"), batch=4,
             impls=("gqn_jax",), flops=False),
        Case("compile-L2", dict(steps=2), batch=4, impls=("gqn_jax",), flops=False,
             compile_only=True),
        Case("compile-L12", PAPER, batch=4, impls=("gqn_jax",), flops=False, compile_only=True),
    ],
    # The paper's batch on this CPU, where activations, not parameters, fill memory
    # (`make bench-b36`: one warm-up and two timed steps).
    "cpu-b36": [
        Case("paper-tower-b36", PAPER, batch=36, flops=False),
        Case("paper-tower-b36-remat", dict(remat=True), batch=36, impls=("gqn_jax",),
             flops=False),
    ],
    # A GPU: the paper's batch, float32 and bfloat16 compute, both implementations
    # (`make bench-gpu`).
    "gpu": [
        Case("paper-tower-b36-f32", PAPER, batch=36, device="gpu"),
        Case("paper-tower-b36-bf16", dict(dtype="bfloat16"), batch=36, flops=False, device="gpu"),
        Case("paper-tower-b36-f32-remat", dict(remat=True), batch=36, impls=("gqn_jax",),
             flops=False, device="gpu"),
    ],
    # The reference model's step (`make bench-reference`): the one a 2-core user trains, at its
    # batch, against the PyTorch baseline, and the step's speed options.
    "reference": [
        Case("reference", reference_model(), batch=16),
        # XLA's default CPU convolutions (YNNPACK), which the entry points switch off.
        Case("reference-ynn-convs", reference_model(), batch=16, impls=("gqn_jax",),
             flops=False, ynn_convolutions=True),
        Case("reference-explicit-vjp", {**reference_model(), "conv_backend": "explicit_vjp"},
             batch=16, impls=("gqn_jax",), flops=False),
        Case("reference-unroll-2", {**reference_model(), "scan_unroll": 2}, batch=16,
             impls=("gqn_jax",), flops=False),
        Case("reference-bf16", {**reference_model(), "dtype": "bfloat16"}, batch=16,
             flops=False),
    ],
    "smoke": [
        Case("smoke", dict(image_size=16, r_channels=16, steps=2, hidden_channels=8,
                           canvas_channels=8, latent_channels=2), batch=2, context_views=2),
    ],
}


# Where each suite's results go unless --output says otherwise (docs/performance.md reads them).
RESULT_FILES = {"cpu": "benchmark.json", "cpu-b36": "benchmark_b36.json",
                "gpu": "benchmark_gpu.json", "reference": "benchmark_reference.json"}


def require_jax_gpu():
  import jax  # pylint: disable=g-import-not-at-top
  platform = jax.default_backend()
  if platform != "gpu":
    raise RuntimeError(
        f"this case is for a GPU, but JAX runs on {platform!r} "
        f"({jax.devices()[0].device_kind}); install JAX's CUDA build with "
        f"`make bench-gpu` (or `.venv/bin/pip install 'jax[cuda12]=={jax.__version__}'`)")


def compiled_jax_step(model: dict, batch_size: int, context_views: int) -> dict:
  """gqn_jax's train step at a model (``ModelConfig`` fields over the paper's) and batch, as
  training runs it on one device, compiled, with random inputs: {compiled, state, batch, key,
  compile_s, model_cfg, optim_cfg, mesh}."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from gqn_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  from gqn_jax import parallel  # pylint: disable=g-import-not-at-top
  from gqn_jax import train_step as ts  # pylint: disable=g-import-not-at-top
  from gqn_jax.model import GQN, dummy_batch  # pylint: disable=g-import-not-at-top

  model_cfg = config_lib.model_config(dataclasses.asdict(ModelConfig()) | model)
  optim_cfg = config_lib.OptimConfig()
  gqn = GQN(model_cfg)
  state = ts.create_train_state(gqn, optim_cfg, jax.random.key(0))
  rng = np.random.default_rng(0)
  batch = {name: jax.numpy.asarray(rng.random(x.shape, dtype=np.float32) if x.dtype != bool
                                   else np.ones(x.shape, bool))
           for name, x in dummy_batch(model_cfg, batch_size, context_views).items()}
  mesh = parallel.data_mesh(jax.devices()[:1])  # the program training runs, on one device.
  key = jax.random.key(1)
  start = time.perf_counter()
  compiled = ts.make_train_step(gqn, optim_cfg, mesh).lower(state, batch, key).compile()
  return {"compiled": compiled, "state": state, "batch": batch, "key": key,
          "compile_s": time.perf_counter() - start, "model_cfg": model_cfg,
          "optim_cfg": optim_cfg, "mesh": mesh}


def measure_jax(case: Case, warmup_steps: int, timed_steps: int) -> dict:
  """Compiles and times gqn_jax's jitted train step (meant for a process of its own)."""
  if case.ynn_convolutions:  # before JAX starts its backend, which reads XLA_FLAGS once
    from gqn_jax import xla_flags  # pylint: disable=g-import-not-at-top
    os.environ["XLA_FLAGS"] = " ".join(
        f for f in os.environ.get("XLA_FLAGS", "").split() if f != xla_flags.CONV_FLAG)
  import jax  # pylint: disable=g-import-not-at-top
  if case.device == "gpu":
    require_jax_gpu()
  import numpy as np  # pylint: disable=g-import-not-at-top
  from gqn_jax import train_step as ts  # pylint: disable=g-import-not-at-top
  from gqn_jax.model import GQN  # pylint: disable=g-import-not-at-top

  built = compiled_jax_step(case.model, case.batch, case.context_views)
  compiled, state, batch, key = built["compiled"], built["state"], built["batch"], built["key"]
  model_cfg = built["model_cfg"]
  record = {"compile_s": built["compile_s"], "parameters": int(sum(
      x.size for x in jax.tree.leaves(state.params)))}
  if not case.compile_only:
    holder = [state]

    def run():
      holder[0], metrics = compiled(holder[0], batch, key)
      if not np.isfinite(float(metrics["loss"])):
        raise FloatingPointError("non-finite loss")

    durations = harness.timed(run, warmup_steps, timed_steps)
    record.update(step_s=statistics.median(durations), all_step_s=durations,
                  step_peak_mem_mib=harness.rss_peak_since_reset_mib())
  record["peak_mem_mib"] = harness.peak_rss_mib()
  record["device_peak_mem_mib"] = harness.device_peak_mib(jax.local_devices()[0])
  if case.flops:
    unrolled = GQN(dataclasses.replace(model_cfg, scan_unroll=model_cfg.steps))
    cost = ts.make_train_step(unrolled, built["optim_cfg"], built["mesh"]).lower(
        holder[0] if not case.compile_only else state, batch, key).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    record["flops_per_step"] = float(cost["flops"])
  # The flags XLA ran with: the ynn-convs case differs from the others only here.
  record.update(jax=jax.__version__, device=str(jax.devices()[0].device_kind),
                dtype=model_cfg.dtype, xla_flags=os.environ.get("XLA_FLAGS", ""))
  return record


def measure_torch(case: Case, warmup_steps: int, timed_steps: int) -> dict:
  from experiments import benchmark_torch  # pylint: disable=g-import-not-at-top
  from gqn_jax.config import model_config  # pylint: disable=g-import-not-at-top
  config = model_config(dataclasses.asdict(ModelConfig()) | case.model)
  record = benchmark_torch.measure(config, case.batch, case.context_views, warmup_steps,
                                   timed_steps, compile=False, threads=0,
                                   after_warmup=harness.reset_peak_rss,
                                   device="cuda" if case.device == "gpu" else "cpu")
  record["step_peak_mem_mib"] = harness.rss_peak_since_reset_mib()
  record["all_step_s"] = record.pop("step_s")
  record["step_s"] = record.pop("median_step_s")
  return record


def measure_matmul_peak(size: int = 4096, repeats: int = 5) -> float:
  """GFLOP/s of a float32 [size x size] @ [size x size] matmul, the best of ``repeats``."""
  import jax  # pylint: disable=g-import-not-at-top
  a = jax.random.normal(jax.random.key(0), (size, size))
  matmul = jax.jit(lambda a: a @ a)
  matmul(a).block_until_ready()
  best = min(harness.timed(lambda: matmul(a).block_until_ready(), 0, repeats))
  return 2 * size ** 3 / best / 1e9


def run_case(case: Case, impl: str, warmup_steps: int, timed_steps: int,
             peak_gflops: float) -> dict:
  measure = measure_jax if impl == "gqn_jax" else measure_torch
  raw = harness.isolated(measure, case, warmup_steps, timed_steps)
  record = {"impl": impl, "case": case.name,
            "config": dataclasses.asdict(ModelConfig()) | case.model,
            "batch": case.batch, "context_views": case.context_views,
            "compile_s": raw.get("compile_s"), "peak_mem_mib": raw["peak_mem_mib"],
            "step_peak_mem_mib": raw.get("step_peak_mem_mib"),
            "device_peak_mem_mib": raw.get("device_peak_mem_mib"), "step_s": raw.get("step_s")}
  if record["step_s"]:
    record["steps_per_s"] = 1.0 / record["step_s"]
    record["scenes_per_s"] = case.batch / record["step_s"]
  record["detail"] = {k: v for k, v in raw.items() if k not in record}
  return record


def add_flop_rates(records, peak_gflops):
  """Both implementations compute the same model, so gqn_jax's FLOP count rates them both.

  (PyTorch's naive formulation does more arithmetic than that count; the rate is 'useful'
  FLOP/s: the model's arithmetic as we compute it, over the step's time.)
  """
  flops = {r["case"]: r["detail"]["flops_per_step"] for r in records
           if "flops_per_step" in r.get("detail", {})}
  for record in records:
    if record["case"] in flops and record.get("step_s"):
      record["flops_per_step"] = flops[record["case"]]
      record["achieved_gflops"] = flops[record["case"]] / record["step_s"] / 1e9
      record["fraction_of_matmul_peak"] = record["achieved_gflops"] / peak_gflops


def markdown_table(records, peak_gflops, machine) -> str:
  lines = [f"Machine: {machine}; float32 matmul peak measured in the run: "
           f"{peak_gflops:.0f} GFLOP/s.", "",
           "| case | impl | batch | step (s) | scenes/s | compile (s) | peak mem (MiB) "
           "| step peak mem (MiB) | GFLOP/step | achieved GFLOP/s | of peak |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  # On an accelerator the host's resident set says little: add the device allocator's peak.
  on_device = any(r.get("device_peak_mem_mib") for r in records)
  if on_device:
    lines[-2] += " device peak mem (MiB) |"
    lines[-1] += "---|"
  fmt = lambda v, spec: "" if v is None else format(v, spec)
  for r in records:
    lines.append(
        f"| {r['case']} | {r['impl']} | {r['batch']} | {fmt(r.get('step_s'), '.2f')} | "
        f"{fmt(r.get('scenes_per_s'), '.2f')} | {fmt(r.get('compile_s'), '.1f')} | "
        f"{r['peak_mem_mib']:.0f} | {fmt(r.get('step_peak_mem_mib'), '.0f')} | "
        f"{fmt(r.get('flops_per_step') and r['flops_per_step'] / 1e9, '.0f')} | "
        f"{fmt(r.get('achieved_gflops'), '.0f')} | {fmt(r.get('fraction_of_matmul_peak'), '.0%')} |"
        + (f" {fmt(r.get('device_peak_mem_mib'), '.0f')} |" if on_device else ""))
  ratios = _ratios(records)
  if ratios:
    lines += ["", "Ratios from this run:"] + [f"- {line}" for line in ratios]
  return "\n".join(lines) + "\n"


def _ratio(a, b, field):
  return f"{a[field] / b[field]:.2f}" if a.get(field) and b.get(field) else "n/a"


def _ratios(records):
  by = {(r["case"], r["impl"]): r for r in records}
  out = []
  for (case, impl), r in by.items():
    torch = by.get((case, "pytorch"))
    if impl == "gqn_jax" and torch and r.get("step_s") and torch.get("step_s"):
      out.append(f"{case}: gqn_jax step time / PyTorch = {r['step_s'] / torch['step_s']:.2f} "
                 f"(throughput x{torch['step_s'] / r['step_s']:.2f}); step peak memory / "
                 f"PyTorch = {_ratio(r, torch, 'step_peak_mem_mib')}")
  for suffix in ("", "-b36"):
    remat = by.get((f"paper-tower{suffix}-remat", "gqn_jax"))
    plain = by.get((f"paper-tower{suffix}", "pytorch"))
    if remat and plain:
      out.append(f"paper-tower{suffix} with remat: gqn_jax step peak memory / PyTorch = "
                 f"{_ratio(remat, plain, 'step_peak_mem_mib')}")
  short, full = by.get(("compile-L2", "gqn_jax")), by.get(("compile-L12", "gqn_jax"))
  if short and full:
    out.append(f"compile time L=12 / L=2 = {full['compile_s'] / short['compile_s']:.2f}")
  xla, ours = (by.get(("paper-tower-L2-xla-conv-grads", "gqn_jax")),
               by.get(("paper-tower-L2", "gqn_jax")))
  if xla and ours and xla.get("step_s") and ours.get("step_s"):
    out.append(f"L=2 step with XLA's own conv gradients in the scan / with the default (auto) = "
               f"{xla['step_s'] / ours['step_s']:.1f}")
  ynn, ours = by.get(("reference-ynn-convs", "gqn_jax")), by.get(("reference", "gqn_jax"))
  if ynn and ours and ynn.get("step_s") and ours.get("step_s"):
    out.append(f"reference step with YNNPACK's convolutions (XLA's default) / with Eigen's "
               f"(xla_flags.CONV_FLAG) = {ynn['step_s'] / ours['step_s']:.2f}")
  return out


def main(argv=None):
  parser = harness.parser(__doc__)
  parser.add_argument("--suite", choices=sorted(SUITES), default="cpu")
  parser.add_argument("--cases", nargs="*", help="only these case names")
  parser.add_argument("--impls", nargs="*", default=["gqn_jax", "pytorch"])
  parser.add_argument("--warmup_steps", type=int, default=2)
  parser.add_argument("--timed_steps", type=int, default=3)
  args = parser.parse_args(argv)
  output = args.output or (harness.RESULTS / RESULT_FILES[args.suite]
                           if args.suite in RESULT_FILES else None)
  cases = [c for c in SUITES[args.suite] if not args.cases or c.name in args.cases]
  if not cases:
    parser.error(f"no case of suite {args.suite!r} is named {args.cases}; known: "
                 f"{[c.name for c in SUITES[args.suite]]}")
  peak = harness.isolated(measure_matmul_peak)
  print(f"float32 matmul peak: {peak:.0f} GFLOP/s", flush=True)
  records = []
  for case in cases:
    for impl in case.impls:
      if impl not in args.impls:
        continue
      print(f"{case.name} / {impl} ...", flush=True)
      record = run_case(case, impl, args.warmup_steps, args.timed_steps, peak)
      records.append(record)
      print("  " + json.dumps({k: v for k, v in record.items() if k not in ("config", "detail")}),
            flush=True)
  add_flop_rates(records, peak)
  machine = harness.machine()
  for impl, label in (("gqn_jax", "JAX"), ("pytorch", "PyTorch")):
    devices = {r["detail"].get("device") for r in records if r["impl"] == impl} - {None}
    if devices:
      machine += f", {label} device: {', '.join(sorted(devices))}"
  table = markdown_table(records, peak, machine)
  print(table)
  harness.write_results(output, {"matmul_peak_gflops": peak, "machine": machine,
                                 "records": records}, table)
  print(f"results: {output}")


if __name__ == "__main__":
  harness.prepare_process()  # both implementations' processes inherit it.
  main()
