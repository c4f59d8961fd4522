"""The scene generator as an Apache Beam pipeline, for generating beyond one machine.

Same scenes, same files as ``generate.write_dataset``: each scene is rendered by the same
per-scene function (``scene.scene_jpegs``, in a render worker process: see worker.py), records
are grouped by shard, and each shard is written in scene order with ``shards.ShardWriter``
(temporary names, renamed when complete). Shards already complete are left out when the
pipeline is built.

The shard writer uses local file operations, so ``root`` must be a file system that every Beam
worker sees (the DirectRunner's local disk, or a shared mount).
"""

import pathlib

from gqn_jax import extras
from gqn_jax import released_format
from gqn_jax.scenes import shards
from gqn_jax.scenes import worker


def _render_dofn(image_size: int, seed: int):
  """A DoFn rendering (shard, index) -> (shard path, (index, record, factors))."""
  beam = extras.require("apache_beam", "data", "the Beam runner")

  class RenderScenes(beam.DoFn):
    """Each DoFn instance (one per Beam worker thread) owns one render worker process."""

    def setup(self):
      self._process = worker.RenderProcess()

    def process(self, element):
      shard, index = element
      jpegs, cameras, factors = self._process.call(
          "scene_jpegs", shard.name, shard.split, index, image_size, seed)
      yield str(shard.path), (index, released_format.encode_scene(jpegs, cameras), factors)

    def teardown(self):
      self._process.close()

  return RenderScenes()


def _write(keyed, shard_by_path: dict) -> str:
  path, scenes = keyed
  shard = shard_by_path[path]
  with shards.ShardWriter(shard) as writer:
    for _, record, factors in sorted(scenes, key=lambda scene_: scene_[0]):
      writer.add(record, factors)
  return path


def build(pipeline, name: str, root, *, train_scenes: int, test_scenes: int,
          scenes_per_shard: int = 100, image_size: int = 64, seed: int = 0):
  """Adds the generation steps to ``pipeline``; returns the PCollection of written paths."""
  beam = extras.require("apache_beam", "data", "the Beam runner")
  directory = pathlib.Path(root) / name
  todo = shards.pending(directory, name, {"train": train_scenes, "test": test_scenes},
                        scenes_per_shard=scenes_per_shard, seed=seed, image_size=image_size)
  shard_by_path = {str(shard.path): shard for shard in todo}
  return (pipeline
          | "Shards" >> beam.Create(todo)
          | "Scenes" >> beam.FlatMap(lambda shard: [(shard, index) for index in shard.indices])
          | "Spread" >> beam.Reshuffle()  # spreads one shard's scenes over the workers.
          | "Render" >> beam.ParDo(_render_dofn(image_size, seed))
          | "ByShard" >> beam.GroupByKey()
          | "Write" >> beam.Map(_write, shard_by_path=shard_by_path))


def run(name: str, root, *, train_scenes: int, test_scenes: int, scenes_per_shard: int = 100,
        image_size: int | None = None, seed: int = 0, pipeline_options=None) -> pathlib.Path:
  """Runs the pipeline (the DirectRunner unless ``pipeline_options`` say otherwise).

  ``image_size=None``: the family's released frame size (84 for mazes, else 64).
  """
  # pylint: disable=g-import-not-at-top
  beam = extras.require("apache_beam", "data", "the Beam runner")
  from apache_beam.options.pipeline_options import PipelineOptions
  from gqn_jax import generate
  from gqn_jax.scenes import get_family
  if image_size is None:
    image_size = get_family(name).default_image_size
  generate.check_arguments(name, train_scenes=train_scenes, test_scenes=test_scenes,
                           scenes_per_shard=scenes_per_shard, image_size=image_size, seed=seed,
                           workers=None)
  with beam.Pipeline(options=PipelineOptions(list(pipeline_options or []))) as pipeline:
    build(pipeline, name, root, train_scenes=train_scenes, test_scenes=test_scenes,
          scenes_per_shard=scenes_per_shard, image_size=image_size, seed=seed)
  return pathlib.Path(root) / name
