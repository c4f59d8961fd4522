r"""Generates GQN scenes with MuJoCo, in the released datasets' format and layout.

Writes ``<root>/<name>/<train|test>/<i>-of-<n>.tfrecord`` (one ``tf.train.Example`` per scene, as
``released_format`` defines it) and ``<shard>.factors.jsonl`` beside each shard with every
scene's factors (shapes, colours, positions, textures, lights; a maze's cell map; the arm's
joint angles and the target of jaco). Scene ``i`` of a split depends
only on (seed, split, i); reruns skip complete shards.

Camera records (x, y, z, yaw, pitch), as ``gqn_jax/scenes/camera.py`` defines and the tests
check against the rendered images: z is up (rooms: floor at z = 0, centre at x = y = 0; 7 x 7
units); yaw is the heading of the view in the x-y plane, 0 along +x, growing counter-clockwise
seen from above (pi/2 looks along +y); pitch > 0 looks up; no roll; pinhole camera with a
50 degree vertical field of view.

Rendering runs in ``python -m gqn_jax.scenes.worker`` child processes (MuJoCo with OSMesa on CPU
machines, EGL with an NVIDIA GPU, or what ``MUJOCO_GL`` says), never next to TensorFlow: see
``gqn_jax/scenes/worker.py``.

Examples::

  python -m gqn_jax.generate --name=rooms_ring_camera --train_scenes=2000 --test_scenes=200
  python -m gqn_jax.generate --name=shepard_metzler_7_parts --train_scenes=100 \
      --test_scenes=10 --runner=beam --beam_options="--direct_num_workers=2"
  python -m gqn_jax.generate --name=rooms_ring_camera --contact_sheet=/tmp/rooms.png
  python -m gqn_jax.generate --name=mazes --train_scenes=100 --test_scenes=10   # 84 px
"""

import pathlib
import shlex

from absl import app
from absl import flags

from gqn_jax import cli
from gqn_jax import extras
from gqn_jax import released_format
from gqn_jax.scenes import get_family
from gqn_jax.scenes import parallel
from gqn_jax.scenes import scene
from gqn_jax.scenes import shards
from gqn_jax.scenes import worker

RUNNERS = ("multiprocessing", "beam")
FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS) -> None:
  """Defines the command line's flags.

  Only :func:`run` calls this, so importing the module for ``write_dataset`` adds no flags whose
  names could clash with the importer's own.
  """
  define = dict(flag_values=flag_values)
  flags.DEFINE_string("name", None, "Scene family: a released dataset name, e.g. "
                      "rooms_ring_camera or shepard_metzler_5_parts.", **define)
  flags.DEFINE_string("root", "data/generated", "Output root; writes <root>/<name>/...", **define)
  flags.DEFINE_integer("train_scenes", None, "Scenes in the train split.", **define)
  flags.DEFINE_integer("test_scenes", None, "Scenes in the test split.", **define)
  flags.DEFINE_integer("scenes_per_shard", 100, "Scenes per .tfrecord file.", **define)
  flags.DEFINE_integer("image_size", None, "Pixels per side of every frame (default: the "
                       "family's, 84 for mazes as released and 64 for the others; the released "
                       "rooms_free_camera_with_object_rotations has 128).", **define)
  flags.DEFINE_integer("seed", 0, "Dataset seed; scene i depends on (seed, split, i).", **define)
  flags.DEFINE_integer("workers", None, "Render processes (default: all cores).", **define)
  flags.DEFINE_boolean("progress", True, "Show a progress bar.", **define)
  flags.DEFINE_enum("runner", "multiprocessing", RUNNERS,
                    "multiprocessing on this machine, or an Apache Beam pipeline.", **define)
  flags.DEFINE_string("beam_options", "", "Beam pipeline options, e.g. '--runner=DataflowRunner "
                      "--project=p' (default: the DirectRunner).", **define)
  flags.DEFINE_string("contact_sheet", None, "Instead of a dataset, write a PNG of a few scenes "
                      "(one row each, all their frames).", **define)
  flags.DEFINE_integer("contact_sheet_scenes", 4, "Scenes (rows) on the contact sheet.", **define)
  flags.DEFINE_integer("contact_sheet_frames", None, "Frames of each scene on the contact sheet "
                       "(default: all; a mazes scene has 300).", **define)


def check_arguments(name: str, *, train_scenes: int, test_scenes: int, scenes_per_shard: int,
                    image_size: int, seed: int, workers) -> None:
  """Raises ValueError naming the argument (= the flag) that cannot work."""
  get_family(name)
  for argument, value, least in (("train_scenes", train_scenes, 0),
                                 ("test_scenes", test_scenes, 0),
                                 ("scenes_per_shard", scenes_per_shard, 1),
                                 ("image_size", image_size, 1), ("seed", seed, 0)):
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
      kind = "positive" if least else "non-negative"
      raise ValueError(f"{argument} must be a {kind} integer, got {value!r}")
  if train_scenes + test_scenes == 0:
    raise ValueError("train_scenes and test_scenes are both 0: nothing to generate")
  if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                              or workers < 1):
    raise ValueError(f"workers must be a positive integer or None, got {workers!r}")


def render_scene(name: str, split: str, index: int, image_size: int, seed: int):
  """Renders one scene: (frames uint8 [S, H, W, 3], cameras float32 [S, 5], factors dict).

  Scene ``index`` of ``split`` depends only on (seed, split, index); it is the scene that
  ``write_dataset`` stores as record ``index`` of the split. Rendering runs in a render worker
  process (see ``gqn_jax/scenes/worker.py``), so this is safe to call next to TensorFlow.
  """
  scene.check_arguments(name, split, index, seed, image_size)  # here, as a ValueError.
  return worker.call("render_scene", name, split, index, image_size, seed)


def write_dataset(name: str, root, *, train_scenes: int, test_scenes: int,
                  scenes_per_shard: int = 100, image_size: int | None = None, seed: int = 0,
                  workers: int | None = None, progress: bool = True) -> pathlib.Path:
  """Generates (or completes) dataset ``name`` under ``root``; returns ``root/name``.

  ``image_size`` None is the family's default (``default_image_size``). Shards already complete
  from an identical earlier run are kept; a shard written with other settings raises
  ``shards.ShardConflict`` instead of being mixed in.
  """
  if image_size is None:
    image_size = get_family(name).default_image_size
  check_arguments(name, train_scenes=train_scenes, test_scenes=test_scenes,
                  scenes_per_shard=scenes_per_shard, image_size=image_size, seed=seed,
                  workers=workers)
  directory = pathlib.Path(root) / name
  todo = shards.pending(directory, name, {"train": train_scenes, "test": test_scenes},
                        scenes_per_shard=scenes_per_shard, seed=seed, image_size=image_size)
  tasks = [(name, shard.split, index, image_size, seed) for shard in todo
           for index in shard.indices]
  results = parallel.render_jpegs(tasks, workers=workers or parallel.default_workers(),
                                  progress=progress, description=name)
  try:
    for shard in todo:
      with shards.ShardWriter(shard) as writer:
        for _ in shard.indices:
          jpegs, cameras, factors = next(results)
          writer.add(released_format.encode_scene(jpegs, cameras), factors)
  finally:
    results.close()  # stops the worker pool at once if a shard failed.
  return directory


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if FLAGS.name is None:
    raise app.UsageError("--name is required; one of: " + ", ".join(released_format.DATASETS))
  try:
    get_family(FLAGS.name)
  except ValueError as error:
    raise app.UsageError(f"--name={FLAGS.name}: {error}") from None
  extras.check("mujoco", "scenes", "rendering scenes")  # here, not in a render worker.
  if FLAGS.image_size is None:
    FLAGS.image_size = get_family(FLAGS.name).default_image_size
  if FLAGS.contact_sheet:
    from gqn_jax.scenes import contact_sheet  # pylint: disable=g-import-not-at-top
    for flag in ("image_size", "contact_sheet_scenes", "contact_sheet_frames"):
      if FLAGS[flag].value is not None and FLAGS[flag].value < 1:
        raise app.UsageError(f"--{flag} must be a positive integer, got {FLAGS[flag].value}")
    path = contact_sheet.write(FLAGS.contact_sheet, FLAGS.name, scenes=FLAGS.contact_sheet_scenes,
                               image_size=FLAGS.image_size, seed=FLAGS.seed,
                               frames=FLAGS.contact_sheet_frames)
    print(f"wrote {path}")
    return
  for flag in ("train_scenes", "test_scenes"):
    if FLAGS[flag].value is None:
      raise app.UsageError(f"--{flag} is required (or pass --contact_sheet)")
  arguments = dict(train_scenes=FLAGS.train_scenes, test_scenes=FLAGS.test_scenes,
                   scenes_per_shard=FLAGS.scenes_per_shard, image_size=FLAGS.image_size,
                   seed=FLAGS.seed)
  try:
    check_arguments(FLAGS.name, workers=FLAGS.workers, **arguments)
  except ValueError as error:
    raise app.UsageError(f"--{error}") from None  # messages start with the argument's name.
  extras.check("tensorflow", "scenes", "writing TFRecord shards")
  if FLAGS.runner == "beam":
    extras.check("apache_beam", "data", "the Beam runner")
    from gqn_jax.scenes import beam_pipeline  # pylint: disable=g-import-not-at-top
    directory = beam_pipeline.run(FLAGS.name, FLAGS.root,
                                  pipeline_options=shlex.split(FLAGS.beam_options), **arguments)
  else:
    directory = write_dataset(FLAGS.name, FLAGS.root, workers=FLAGS.workers,
                              progress=FLAGS.progress, **arguments)
  print(f"wrote {directory}")


def run():
  """Console-script entry point (``gqn-generate``)."""
  define_flags()
  cli.run(main, __name__)  # --help lists this module's flags (gqn_jax/cli.py).


if __name__ == "__main__":
  run()
