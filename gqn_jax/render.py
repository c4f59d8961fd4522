r"""Renders one of the paper's figures from a trained run.

  python -m gqn_jax.render <figure> --workdir=<run> --output=<file> [options]

Figures (see ``gqn_jax/figures/``): novel_views, uncertainty, scene_algebra, self_correction,
representation_space and training_curves write PNGs; flyaround writes an animated GIF.
Examples::

  python -m gqn_jax.render novel_views --workdir=runs/demo --output=runs/demo/novel_views.png
  python -m gqn_jax.render flyaround --workdir=runs/demo --output=runs/demo/fly.gif --ring_size=36
  python -m gqn_jax.render representation_space --workdir=runs/demo --output=runs/demo/r.png \
      --scenes=300 --factors=object_shape,wall
  python -m gqn_jax.render training_curves --workdir=runs/demo --output=runs/demo/curves.png

--workdir and --output may be URLs such as gs://bucket/run (read and written through
etils.epath, as training writes the workdir).
"""

from absl import app
from absl import flags
from etils import epath

from gqn_jax import allocator
from gqn_jax import cli
from gqn_jax import figures

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS) -> None:
  """Defines the command line's flags (only when run, as in gqn_jax.generate)."""
  define = dict(flag_values=flag_values)
  flags.DEFINE_string("workdir", None, "The training run's directory.", **define)
  flags.DEFINE_string("output", None, "File to write: .png, or .gif for flyaround.", **define)
  flags.DEFINE_integer("step", None, "Checkpoint step; default the latest.", **define)
  flags.DEFINE_string("data_dir", None, "TFDS data_dir of the held-out scenes; default the "
                      "run config's data.data_dir, else the TFDS default.", **define)
  flags.DEFINE_string("scenes_dir", None, "Root the scene generator wrote to, for scene "
                      "factors (representation_space); default $GQN_GENERATED_DIR or "
                      "data/generated.", **define)
  flags.DEFINE_string("split", "test", "Split the scenes come from.", **define)
  flags.DEFINE_integer("scenes", None, "Scenes (rows, or points for representation_space); "
                       "default per figure.", **define)
  flags.DEFINE_integer("first_scene", 0, "Index in the split of the first scene shown (the "
                       "scene of a flyaround; the background room of scene_algebra).", **define)
  flags.DEFINE_integer("context_views", None, "Context views per scene; default the run "
                       "config's data.max_context_views.", **define)
  flags.DEFINE_integer("samples", None, "Prior samples per query; default per figure.", **define)
  flags.DEFINE_integer("ring_size", 36, "flyaround: query poses on the ring (GIF frames).",
                       **define)
  flags.DEFINE_integer("frame_ms", 100, "flyaround: milliseconds per GIF frame.", **define)
  flags.DEFINE_list("factors", [], "representation_space: factors to colour by (default all "
                    "the family has).", **define)
  flags.DEFINE_integer("seed", 0, "Seeds the views and latent samples shown.", **define)


def request_from_flags(figure: str, flag_values=FLAGS):
  """Checks the flags, loads the checkpoint if the figure needs one; a figures.common.Request."""
  from gqn_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from gqn_jax.figures import common  # pylint: disable=g-import-not-at-top
  for name in ("workdir", "output"):
    if not flag_values[name].value:
      raise app.UsageError(f"--{name} is required")
  workdir = epath.Path(flag_values.workdir)
  checkpoint = None
  if figure in figures.NEEDS_CHECKPOINT:
    checkpoint = checkpoints.load(workdir, flag_values.step)
  elif not workdir.is_dir():
    raise FileNotFoundError(f"--workdir={workdir}: no such directory")
  data_dir = flag_values.data_dir
  if data_dir is None and checkpoint is not None:
    data_dir = checkpoint.config.data.get("data_dir")
  return common.Request(
      output=epath.Path(flag_values.output), workdir=workdir, checkpoint=checkpoint,
      data_dir=data_dir, scenes_dir=flag_values.scenes_dir, split=flag_values.split,
      scenes=flag_values.scenes, first_scene=flag_values.first_scene,
      context_views=flag_values.context_views, samples=flag_values.samples,
      ring_size=flag_values.ring_size, frame_ms=flag_values.frame_ms,
      factors=tuple(flag_values.factors), seed=flag_values.seed)


def render(argv, flag_values=FLAGS) -> epath.Path:
  """Makes the figure named in ``argv[1]`` with the parsed ``flag_values``; returns its path."""
  if len(argv) != 2:
    raise app.UsageError(f"name one figure ({', '.join(figures.FIGURES)}), e.g. "
                         f"'python -m gqn_jax.render novel_views --workdir=... --output=...'; "
                         f"got {argv[1:] or 'none'}")
  try:
    module = figures.get(argv[1])
  except ValueError as error:
    raise app.UsageError(str(error)) from None
  if flag_values.first_scene < 0:
    raise app.UsageError(f"--first_scene must be >= 0, got {flag_values.first_scene}")
  return module.make(request_from_flags(argv[1], flag_values))


def main(argv):
  try:
    path = render(argv)
  except (FileNotFoundError, ValueError) as error:
    raise SystemExit(f"error: {error}") from None
  print(f"wrote {path}")


def run():
  """Console-script entry point (``gqn-render``)."""
  # CPU-only hosts, before JAX starts: tcmalloc (gqn_jax/allocator.py says why).
  allocator.use_tcmalloc()
  define_flags()
  cli.run(main, __name__)  # --help lists this module's flags (gqn_jax/cli.py).


if __name__ == "__main__":
  run()
