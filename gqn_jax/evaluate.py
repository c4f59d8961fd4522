r"""Evaluates a trained run on held-out scenes, next to trivial baselines (gqn_jax/evaluation.py).

  python -m gqn_jax.evaluate --workdir=<run> [--split=test] [--output=<json>]

Prints a table (per number of context views: -ELBO in nats and bits per dimension, NLL, KL,
PSNR and SSIM of the model, of the nearest context view and of the mean training image) and
writes the numbers as JSON, by default to ``<workdir>/evaluation_<split>.json``, and beside it
(``.md``) the model card's markdown table (``evaluation.format_markdown``). The same
checkpoint, flags and data give the same JSON, byte for byte. The workdir and the output may be
URLs such as gs://bucket/run (read and written through etils.epath, as training does). Example::

  python -m gqn_jax.evaluate --workdir=runs/demo --num_scenes=200 --output=runs/demo/eval.json
"""

import json

from absl import app
from absl import flags
from etils import epath

from gqn_jax import allocator
from gqn_jax import cli

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS) -> None:
  """Defines the command line's flags (only when run, as in gqn_jax.generate)."""
  define = dict(flag_values=flag_values)
  flags.DEFINE_string("workdir", None, "The training run's directory.", **define)
  flags.DEFINE_integer("step", None, "Checkpoint step; default the latest.", **define)
  flags.DEFINE_string("split", "test", "Held-out split (a TFDS split expression).", **define)
  flags.DEFINE_string("output", None, "JSON file to write; default "
                      "<workdir>/evaluation_<split>.json.", **define)
  flags.DEFINE_string("data_dir", None, "TFDS data_dir; default the run config's "
                      "data.data_dir, else the TFDS default.", **define)
  flags.DEFINE_integer("num_scenes", 256, "Scenes evaluated: the first of the split in stored "
                       "order; 0 (or more than the split holds) for all.", **define)
  flags.DEFINE_integer("batch_size", 16, "Scenes per evaluation batch.", **define)
  flags.DEFINE_integer("samples", 4, "Prior samples per scene and number of views.", **define)
  flags.DEFINE_float("sigma", None, "Pixel standard deviation of the likelihood; default the "
                     "config's optim.sigma_final (the paper reports at 0.7).", **define)
  flags.DEFINE_integer("mean_image_scenes", 100, "Training scenes whose frames are averaged into "
                       "the mean-image baseline.", **define)
  flags.DEFINE_integer("seed", 0, "Seeds the frames drawn per scene and every latent draw.",
                       **define)
  flags.DEFINE_boolean("progress", True, "Show a progress bar.", **define)


def evaluate_run(flag_values=FLAGS) -> tuple[dict, epath.Path]:
  """Runs the evaluation the flags describe; returns (results, JSON path written)."""
  from gqn_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from gqn_jax import evaluation  # pylint: disable=g-import-not-at-top
  from gqn_jax.figures import scenes as scenes_lib  # pylint: disable=g-import-not-at-top
  if not flag_values.workdir:
    raise app.UsageError("--workdir is required")
  for name in ("batch_size", "samples", "mean_image_scenes"):
    if flag_values[name].value < 1:
      raise app.UsageError(f"--{name} must be a positive integer, got {flag_values[name].value}")
  if flag_values.num_scenes < 0:
    raise app.UsageError(f"--num_scenes must be >= 0 (0: all), got {flag_values.num_scenes}")
  checkpoint = checkpoints.load(flag_values.workdir, flag_values.step)
  config = checkpoint.config
  data_dir = flag_values.data_dir or config.data.get("data_dir")
  sigma = flag_values.sigma if flag_values.sigma is not None else config.optim.sigma_final
  if sigma <= 0:
    raise app.UsageError(f"--sigma must be positive, got {sigma}")
  batches, scenes = evaluation.held_out_batches(
      config, flag_values.split, data_dir, num_scenes=flag_values.num_scenes or None,
      batch_size=flag_values.batch_size, seed=flag_values.seed)
  if not scenes:
    raise ValueError(f"--split={flag_values.split}: no scenes")
  mean_image = evaluation.mean_training_image(config, data_dir,
                                              scenes=flag_values.mean_image_scenes)
  results = evaluation.evaluate(
      checkpoint.model_config, checkpoint.params, batches, mean_image=mean_image, sigma=sigma,
      seed=flag_values.seed, samples=flag_values.samples, total_scenes=scenes,
      progress=flag_values.progress)
  results = {
      "workdir": str(checkpoint.workdir),
      "step": checkpoint.step,
      "dataset": config.data.dataset,
      "split": flag_values.split,
      "mean_image_scenes": min(flag_values.mean_image_scenes, scenes_lib.split_size(
          config.data.dataset, "train", data_dir)),
      **results,
  }
  output = epath.Path(flag_values.output or
                      checkpoint.workdir / f"evaluation_{_file_part(flag_values.split)}.json")
  output.parent.mkdir(parents=True, exist_ok=True)
  output.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
  output.with_suffix(".md").write_text(evaluation.format_markdown(results) + "\n",
                                       encoding="utf-8")
  return results, output


def _file_part(split: str) -> str:
  """A split expression as a file name part ('test[:10%]' -> 'test_10pct')."""
  cleaned = split.replace("%", "pct")
  return "".join(c if c.isalnum() or c in "-_" else "_" for c in cleaned).strip("_")


def main(argv):
  from gqn_jax import evaluation  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    results, output = evaluate_run()
  except (FileNotFoundError, ValueError) as error:
    raise SystemExit(f"error: {error}") from None
  print(evaluation.format_table(results))
  print(f"wrote {output}")


def run():
  """Console-script entry point (``gqn-evaluate``)."""
  # CPU-only hosts, before JAX starts: tcmalloc (gqn_jax/allocator.py says why); cli.run sets
  # XLA's CPU flags.
  allocator.use_tcmalloc()
  define_flags()
  cli.run(main, __name__)  # --help lists this module's flags (gqn_jax/cli.py).


if __name__ == "__main__":
  run()
