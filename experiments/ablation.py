r"""Which settings make a GQN learn generated rooms fastest on a CPU: short runs, scored held out.

Each variant is gqn_jax/configs/reference.py with a few fields changed. Every variant trains for
the same number of steps (``--steps``) into ``runs/ablation/<variant>``, is scored by
``gqn-evaluate`` on the test split (scenes the training never saw), and lands as a row of
experiments/results/ablation.{json,md}. Rerunning skips finished variants and resumes a
half-trained one (the training resumes exactly)::

  python -m experiments.ablation                      # every variant
  python -m experiments.ablation --variants tower_s0.2 pool_s0.2 --steps 1500

Needs the dataset that experiments/reference.sh builds (data/tfds/reference).
"""

import argparse
import json
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = "gqn_jax/configs/reference.py"
RESULTS = ROOT / "experiments" / "results"

# Each row pins how r reads the views and the KL floor, which the reference config has changed
# since the early rows (the paper's sum, then view attention, then cell attention with pixels in
# r, then free nats), so that a rerun measures what the table shows.
SUM = {"model.view_attention": False, "model.attention_over": "views", "model.r_pixels": False,
       "optim.free_nats_per_step": 0.0}
ATTENTION = {"model.view_attention": True, "model.attention_over": "views",
             "model.r_pixels": False, "optim.free_nats_per_step": 0.0}

# name -> (what it changes from the reference config, config overrides).
VARIANTS = {
    "pool_s0.7": ("pool r, sigma_final 0.7 (the demo's settings)",
                  {**SUM, "model.representation": "pool", "optim.sigma_final": 0.7}),
    "pool_s0.2": ("pool r, sigma_final 0.2",
                  {**SUM, "model.representation": "pool", "optim.sigma_final": 0.2}),
    "tower_s0.7": ("sigma_final 0.7", {**SUM, "optim.sigma_final": 0.7}),
    "tower_s0.2": ("sigma_final 0.2", {**SUM, "optim.sigma_final": 0.2}),
    "tower_s0.1": ("the reference config before view attention (sigma_final 0.1)", SUM),
    # The rows below change one thing more of that config (sigma_final 0.1, summed views).
    "tower_s0.1_1200scenes": ("1,200 training scenes",
                              {**SUM, "data.train_split": "train[:1200]"}),
    "tower_s0.1_w64": ("64-channel cores and canvas",
                       {**SUM, "model.hidden_channels": 64, "model.canvas_channels": 64}),
    "tower_s0.1_lr1e-3": ("learning rate 1e-3 -> 1e-4",
                          {**SUM, "optim.lr_initial": 1e-3, "optim.lr_final": 1e-4}),
    "tower_s0.1_rays": ("each cell sees its viewing ray (model.pose_rays)",
                        {**SUM, "model.pose_rays": True}),
    "pool_s0.1_rays": ("pool r, each cell sees its viewing ray",
                       {**SUM, "model.representation": "pool", "model.pose_rays": True}),
    # View attention alone (the reference config between the sum and its current levers).
    "tower_s0.1_attention": ("r weighted over views by a learnt query-view pose match "
                             "(model.view_attention)", ATTENTION),
    "tower_s0.7_attention": ("view attention, sigma_final 0.7",
                             {**ATTENTION, "optim.sigma_final": 0.7}),
    "tower_s0.1_cell_attention": ("view attention plus each query cell attending over every "
                                  "view's cells (model.attention_over=cells)",
                                  {**ATTENTION, "model.attention_over": "cells"}),
    "tower_s0.1_attention_pixels": ("view attention, r also carrying each view's pixels "
                                    "(model.r_pixels)", {**ATTENTION, "model.r_pixels": True}),
    "tower_s0.1_attention_free1": ("view attention, each step's KL free up to 1 nat "
                                   "(optim.free_nats_per_step=1)",
                                   {**ATTENTION, "optim.free_nats_per_step": 1.0}),
    # The reference config before free nats (view and cell attention, pixels in r), and as it is.
    "reference": ("the reference config before free nats (view and cell attention, pixels in r)",
                  {"optim.free_nats_per_step": 0.0}),
    "reference_free1": ("the reference config as it is: each step's KL free up to 1 nat "
                        "(optim.free_nats_per_step=1)", {}),
}


def _overrides(fields: dict) -> list[str]:
  return [f"--config.{name}={value}" for name, value in fields.items()]


def _run(command: list[str], log: pathlib.Path) -> float:
  """Runs a command with its output in ``log``; returns its wall time; fails loudly."""
  start = time.monotonic()
  with log.open("a", encoding="utf-8") as out:
    status = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False)
  if status.returncode:
    sys.exit(f"{' '.join(command)} failed (exit {status.returncode}); see {log}")
  return time.monotonic() - start


def _measured(record: dict, args) -> bool:
  return record["steps"] == args.steps and record["num_scenes"] == args.num_scenes


def published_records(output: pathlib.Path) -> dict[str, dict]:
  """The rows already in <output>.json, by variant: a checkout without runs/ keeps them."""
  path = output.with_suffix(".json")
  if not path.exists():
    return {}
  return {r["variant"]: r for r in json.loads(path.read_text(encoding="utf-8"))}


def run_variant(name: str, args, published: dict[str, dict]) -> dict:
  """Trains and evaluates one variant (skipping what is done, here or in the published
  table); returns its record."""
  description, fields = VARIANTS[name]
  if name in published and _measured(published[name], args):
    return published[name]
  workdir = pathlib.Path(args.runs) / name
  workdir.mkdir(parents=True, exist_ok=True)
  record_path = workdir / "ablation_record.json"
  if record_path.exists():
    record = json.loads(record_path.read_text(encoding="utf-8"))
    if _measured(record, args):
      return record
  # Every row annealed the learning rate over 8k steps (the reference run's length when the
  # rows ran), whatever the reference config's run length is now.
  fields = {"train.num_steps": args.steps, "optim.sigma_anneal_steps": args.sigma_anneal_steps,
            "optim.lr_anneal_steps": 8_000,
            "train.eval_every_steps": 0, "train.image_every_steps": args.steps,
            "train.checkpoint_every_steps": 500, "train.progress_bar": False, **fields}
  python = sys.executable
  print(f"== {name}: {description}", flush=True)
  train_seconds = _run([python, "-m", "gqn_jax.train", f"--config={CONFIG}",
                        f"--workdir={workdir}", *_overrides(fields)], workdir / "train.log")
  evaluation = workdir / "evaluation_test.json"
  eval_seconds = _run([python, "-m", "gqn_jax.evaluate", f"--workdir={workdir}",
                       f"--num_scenes={args.num_scenes}", "--progress=false",
                       f"--output={evaluation}"], workdir / "evaluate.log")
  record = {"variant": name, "changes": description, "overrides": fields, "steps": args.steps,
            "num_scenes": args.num_scenes, "train_wall_seconds": round(train_seconds, 1),
            "eval_wall_seconds": round(eval_seconds, 1),
            "evaluation": json.loads(evaluation.read_text(encoding="utf-8"))}
  record_path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
  return record


# The columns that summarise one gqn-evaluate result (experiments/held_out_curve.py uses them too).
SUMMARY_HEADER = ("PSNR 1 view | PSNR K views | K views at view 1's pose | nearest view 1 / K | "
                  "mean image | posterior PSNR | KL nats (K) | min KL per step")


def summary_cells(evaluation: dict) -> str:
  """SUMMARY_HEADER's cells for one gqn-evaluate result: the prediction's PSNR at 1 and K views,
  at K views rendered at another pose, the baselines, the posterior reconstruction and the KL."""
  rows = evaluation["results"]
  first, last = rows[0], rows[-1]
  mean = lambda row, predictor, metric: row[predictor][metric]["mean"]
  kl_steps = mean(last, "gqn", "kl_per_step")
  # The pose control (docs/evaluation.md): "-" in results written before gqn-evaluate had it.
  other_pose = evaluation.get("other_pose")
  other_pose = "-" if other_pose is None else f"{other_pose['psnr']['mean']:.2f}"
  return (f"{mean(first, 'gqn', 'psnr'):.2f} | {mean(last, 'gqn', 'psnr'):.2f} | {other_pose} | "
          f"{mean(first, 'nearest_view', 'psnr'):.2f} / {mean(last, 'nearest_view', 'psnr'):.2f} | "
          f"{mean(last, 'mean_image', 'psnr'):.2f} | "
          f"{mean(last, 'gqn', 'psnr_reconstruction'):.2f} | {mean(last, 'gqn', 'kl_nats'):.1f} | "
          f"{min(kl_steps):.2f}")


def table(records: list[dict]) -> str:
  """Markdown: PSNR of the prediction at 1 and K views against the baselines, KL, recon."""
  lines = [f"| variant | changes | train s | {SUMMARY_HEADER} |", "|---" * 11 + "|"]
  for record in records:
    lines.append(f"| {record['variant']} | {record['changes']} | "
                 f"{record['train_wall_seconds']:.0f} | {summary_cells(record['evaluation'])} |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
  parser.add_argument("--steps", type=int, default=1500, help="Training steps per variant.")
  parser.add_argument("--sigma_anneal_steps", type=int, default=1000,
                      help="Steps over which sigma falls from 2.0 to its final value.")
  parser.add_argument("--num_scenes", type=int, default=200, help="Held-out scenes scored.")
  parser.add_argument("--runs", default="runs/ablation", help="Where the variants' runs go.")
  parser.add_argument("--output", default=str(RESULTS / "ablation"),
                      help="Writes <output>.json and <output>.md.")
  args = parser.parse_args()
  output = pathlib.Path(args.output)
  for name in args.variants:
    published = published_records(output)
    run_variant(name, args, published)
    # Every finished variant, published or in the sweep directory (which wins), in the order
    # of VARIANTS, so that a partial rerun keeps the others.
    found = {**published, **{other: json.loads(path.read_text(encoding="utf-8"))
                             for other in VARIANTS
                             if (path := pathlib.Path(args.runs) / other /
                                 "ablation_record.json").exists()}}
    records = [found[other] for other in VARIANTS if other in found]
    # Written after every variant, so an interrupted sweep keeps what it measured.
    output.with_suffix(".json").write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    output.with_suffix(".md").write_text(
        f"Short runs of {args.steps} steps (batch 16), each scored by gqn-evaluate on "
        f"{args.num_scenes} held-out test scenes (`python -m experiments.ablation`). PSNR in dB "
        f"of the mean of 4 prior samples; 'posterior PSNR' reconstructs the query with the "
        f"target seen; KL at K views.\n\n{table(records)}\n", encoding="utf-8")
    print(table([r for r in records if r["variant"] == name]).splitlines()[-1], flush=True)


if __name__ == "__main__":
  main()
