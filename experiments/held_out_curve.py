r"""A run's held-out metrics against training time: every checkpoint scored by gqn-evaluate.

Each checkpoint step of the run is evaluated on the first ``--num_scenes`` test scenes (a fresh
``gqn-evaluate`` process per step, its JSON kept in ``<workdir>/curve/step_<N>.json`` so that
rerunning scores only new steps), and the curve is written as a markdown table::

  python -m experiments.held_out_curve --workdir=runs/reference --num_scenes=200 \
      --output=experiments/results/reference_curve.md

Training time is read from the run's TensorBoard log (``perf/steps_per_second``, logged every
``log_every_steps``): the sum of each logged interval's steps over its rate, so evaluations,
checkpoints and pictures during training are included and compilation is not.
"""

import argparse
import json
import pathlib
import subprocess
import sys

import numpy as np

from experiments import ablation

ROOT = pathlib.Path(__file__).resolve().parents[1]
RATE_TAG = "perf/steps_per_second"


def checkpoint_steps(workdir: pathlib.Path) -> list[int]:
  from gqn_jax import checkpoints  # pylint: disable=g-import-not-at-top
  if not (workdir / checkpoints.CHECKPOINT_DIR).is_dir():
    raise SystemExit(f"--workdir={workdir}: no {checkpoints.CHECKPOINT_DIR}/ directory")
  checkpointer = checkpoints.Checkpointer(workdir, read_only=True)
  try:
    return sorted(checkpointer.all_steps())
  finally:
    checkpointer.close()


def training_seconds(workdir: pathlib.Path) -> tuple[np.ndarray, np.ndarray] | None:
  """(steps, cumulative seconds) from the logged rates; None without them."""
  from gqn_jax.figures import training_curves  # pylint: disable=g-import-not-at-top
  try:
    directories = training_curves.event_files(workdir)
  except FileNotFoundError:
    return None
  for files in directories.values():
    scalars = training_curves.read_scalars(files)
    if RATE_TAG in scalars:
      steps, rates = scalars[RATE_TAG]
      steps, first = np.unique(steps, return_index=True)  # a resumed run may log a step twice.
      rates = rates[first]
      intervals = np.diff(np.concatenate([[0], steps]))
      return steps, np.cumsum(intervals / rates)
  return None


def score(workdir: pathlib.Path, step: int, num_scenes: int, available: bool) -> dict:
  """gqn-evaluate's results for one step, computed once and kept under <workdir>/curve/.

  A step scored on another number of scenes is scored again while its checkpoint is kept.
  """
  output = workdir / "curve" / f"step_{step}.json"
  if output.exists():
    results = json.loads(output.read_text(encoding="utf-8"))
    if results["scenes"] == num_scenes or not available:
      return results
  command = [sys.executable, "-m", "gqn_jax.evaluate", f"--workdir={workdir}", f"--step={step}",
             f"--num_scenes={num_scenes}", f"--output={output}", "--noprogress"]
  status = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
  if status.returncode:
    raise SystemExit(f"{' '.join(command)} failed:\n{status.stdout[-2000:]}{status.stderr[-2000:]}")
  return json.loads(output.read_text(encoding="utf-8"))


def row(step: int, results: dict, times) -> str:
  """One table row; ``times`` is training_seconds' answer (None: no logged rates)."""
  minutes = "-"
  if times is not None and step <= times[0][-1]:
    minutes = f"{float(np.interp(step, times[0], times[1])) / 60:.1f}"
  return f"| {step:,} | {minutes} | {ablation.summary_cells(results)} |"


def table(workdir: pathlib.Path, scored: dict[int, dict], times, preface: str = "") -> str:
  any_results = next(iter(scored.values()))
  k = any_results["results"][-1]["context_views"]
  lines = [preface, ""] if preface else []
  lines += [f"`python -m experiments.held_out_curve --workdir={workdir} "
           f"--num_scenes={any_results['scenes']}`", "",
           f"Run {workdir}: {any_results['scenes']} held-out test scenes per step "
           f"({any_results['samples']} prior samples, sigma {any_results['sigma']}). PSNR in dB "
           f"of the prediction (mean of the prior samples) at 1 and K = {k} context views, and "
           f"at K views rendered at the first context view's pose instead of the query's (a "
           f"model that ignores the pose scores the same); posterior PSNR and KL at K views.",
           "", f"| step | training min | {ablation.SUMMARY_HEADER} |", "|---" * 10 + "|"]
  for step, results in sorted(scored.items()):
    lines.append(row(step, results, times))
  return "\n".join(lines) + "\n"


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True, type=pathlib.Path)
  parser.add_argument("--num_scenes", type=int, default=200)
  parser.add_argument("--steps", type=int, nargs="*",
                      help="checkpoint steps to score; default every one the run keeps")
  parser.add_argument("--preface", default="",
                      help="markdown put above the table (e.g. how the run was trained)")
  parser.add_argument("--output", type=pathlib.Path,
                      help="markdown file; default <workdir>/curve/curve.md")
  args = parser.parse_args(argv)
  workdir = args.workdir
  available = set(checkpoint_steps(workdir))
  steps = args.steps or sorted(available)
  if missing := sorted(set(steps) - available):
    raise SystemExit(f"--steps: {workdir} keeps no checkpoint of step(s) {missing}")
  if not steps:
    raise SystemExit(f"--workdir={workdir}: no checkpoints to score")
  # Steps scored before (whose checkpoints may have been rotated away) stay in the curve.
  kept = {int(p.stem.split("_")[1]) for p in (workdir / "curve").glob("step_*.json")}
  scored = {}
  times = training_seconds(workdir)
  for step in sorted(set(steps) | kept):
    scored[step] = score(workdir, step, args.num_scenes, step in available)
    print(row(step, scored[step], times), flush=True)
  output = args.output or workdir / "curve" / "curve.md"
  output.parent.mkdir(parents=True, exist_ok=True)
  output.write_text(table(workdir, scored, times, args.preface), encoding="utf-8")
  print(f"wrote {output}")


if __name__ == "__main__":
  main()
