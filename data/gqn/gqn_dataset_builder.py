r"""TFDS dataset ``gqn``: DeepMind's released GQN scenes, and generated ones, losslessly.

One builder config per released dataset, under its released name (``rooms_ring_camera``, ...,
``mazes``), reading the TFRecords fetched with ``gsutil`` from ``--manual_dir``; and one per
dataset the scene generator (``gqn_jax.generate``) writes, named ``generated_<name>``, reading
what it wrote (``--manual_dir``, else ``$GQN_GENERATED_DIR``, else ``data/generated/``) or
generating a small set there first.

Released data (``<manual_dir>/<name>/{train,test}/*.tfrecord``)::

  gsutil -m cp -R gs://gqn-dataset/rooms_ring_camera data/downloads
  .venv/bin/tfds build data/gqn --config=rooms_ring_camera --manual_dir=data/downloads \
      --data_dir=data/tfds --file_format=array_record \
      --beam_pipeline_options="direct_running_mode=multi_processing,direct_num_workers=2"

(Beam 2.77's DirectRunner first tries its Prism runner, a binary it downloads, and falls back to
the FnApiRunner, which runs the worker processes; ``runner=FnApiRunner,`` in front skips that.)

The same conversion on Dataflow (needs ``pip install 'apache-beam[gcp]==2.77.0' build`` here;
workers install gqn_jax from pyproject.toml and read the public bucket directly)::

  .venv/bin/tfds build data/gqn --config=rooms_ring_camera --manual_dir=gs://gqn-dataset \
      --data_dir=gs://<bucket>/tfds --file_format=array_record \
      --beam_pipeline_options="runner=DataflowRunner,project=<project>,region=<region>,\
temp_location=gs://<bucket>/tmp,setup_file=./pyproject.toml,max_num_workers=32"

Generated data, no download::

  .venv/bin/tfds build data/gqn --config=generated_rooms_ring_camera \
      --data_dir=data/tfds --file_format=array_record

Every example is one scene:

* ``frames``: uint8 [S, H, W, 3], stored as the release's JPEG bytes, not re-encoded;
* ``cameras``: float32 [S, 5], the release's x, y, z, yaw, pitch, raw;
* ``scene``: ``<split>/<shard file>#<record index>``, where the scene came from.

Conversion is an Apache Beam pipeline (one shard file per work item), so it runs unchanged on
the local DirectRunner or on Dataflow/Flink/Spark. Each record is checked (S decodable RGB JPEGs
of the dataset's size, S x 5 finite cameras); a bad one stops the build with an error naming the
file and record, or, built as a variant with ``skip_bad_records``, is logged, counted (Beam
counter ``gqn/bad_records``) and left out::

  .venv/bin/tfds build data/gqn \
      --config='{"name": "rooms_ring_camera-skip_bad", "skip_bad_records": true}' ...

Variants (``<config>-<variant>``, any GqnConfig field set in the JSON) are built into their own
directory, so a build that left scenes out is never mistaken for the complete one.
"""

import dataclasses
import functools
import logging
import os
from pathlib import Path

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from gqn_jax import released_format
from gqn_jax.data import scene_records

GENERATED_PREFIX = "generated_"
# Datasets the scene generator can write (gqn_jax.generate.write_dataset).
GENERATED_NAMES = (
    "rooms_ring_camera",
    "rooms_free_camera_no_object_rotations",
    "rooms_free_camera_with_object_rotations",
    "shepard_metzler_5_parts",
    "shepard_metzler_7_parts",
    "jaco",
    "mazes",
)
GENERATED_ROOT_ENV = "GQN_GENERATED_DIR"
# A config built with other options needs a name of its own, '<config>-<variant>'; TFDS refuses a
# custom config named like a predefined one, and the distinct name keeps the two builds apart.
VARIANT_SEPARATOR = "-"
DEFAULT_GENERATED_ROOT = Path(__file__).resolve().parents[1] / "generated"  # data/generated


@dataclasses.dataclass(eq=False)
class GqnConfig(tfds.core.BuilderConfig):
  """A released dataset (its released name) or a generated one (``generated_<name>``)."""
  skip_bad_records: bool = False   # log and count bad records instead of stopping.
  generate_train_scenes: int = 500  # scenes generated when a generated config finds none.
  generate_test_scenes: int = 100

  def __post_init__(self):
    base = self.name.split(VARIANT_SEPARATOR, 1)[0]
    source = base.removeprefix(GENERATED_PREFIX)
    if source not in released_format.DATASETS or (base != source and source not in GENERATED_NAMES):
      known = list(released_format.DATASETS) + [GENERATED_PREFIX + n for n in GENERATED_NAMES]
      raise ValueError(f"unknown gqn config {self.name!r}: its name must be one of {known}, "
                       f"optionally followed by '{VARIANT_SEPARATOR}<variant>'")

  @property
  def generated(self) -> bool:
    return self.name.startswith(GENERATED_PREFIX)

  @property
  def source_name(self) -> str:
    """The released dataset name, which is also the generator's name for it."""
    return self.name.split(VARIANT_SEPARATOR, 1)[0].removeprefix(GENERATED_PREFIX)

  @property
  def scene_spec(self) -> scene_records.SceneSpec:
    info = released_format.DATASETS[self.source_name]
    size = generated_frame_size(self.source_name) if self.generated else info.frame_size
    return scene_records.SceneSpec(info.frames_per_scene, size)


def _config(name: str) -> GqnConfig:
  kind = "generated by gqn_jax.generate" if name.startswith(GENERATED_PREFIX) else "released"
  return GqnConfig(name=name, description=f"{name.removeprefix(GENERATED_PREFIX)}, {kind}.")


def generated_frame_size(name: str) -> int:
  """The generator's default image_size for ``name`` (84 for mazes, as released; else 64)."""
  from gqn_jax.scenes import get_family  # pylint: disable=g-import-not-at-top
  return get_family(name).default_image_size


def generated_root() -> Path:
  return Path(os.environ.get(GENERATED_ROOT_ENV, DEFAULT_GENERATED_ROOT))


def _has_shards(dataset_dir: epath.Path) -> bool:
  return all((dataset_dir / split).is_dir() and any(
      scene_records.SHARD_PATTERN.match(p.name) for p in (dataset_dir / split).iterdir())
             for split in released_format.SPLITS)


def missing_files(source: epath.Path, name: str) -> dict[str, tuple[int, int]]:
  """{split: (files found, files in the release)} of the splits of ``source`` that lack some.

  The release's counts are released_format.DATASETS (docs/data.md, "The seven datasets"); a
  download that stopped early (gsutil interrupted, a full disk) leaves fewer.
  """
  info = released_format.DATASETS[name.split(VARIANT_SEPARATOR, 1)[0]]
  expected = {"train": info.train_files, "test": info.test_files}
  found = {split: len(scene_records.list_shards(source / split)) for split in expected}
  return {split: (found[split], expected[split]) for split in expected
          if found[split] < expected[split]}


def warn_if_partial(source: epath.Path, name: str) -> None:
  """Logs a warning naming the counts when ``source`` holds only part of a released dataset."""
  missing = missing_files(source, name)
  if missing:
    counts = ", ".join(f"{split} {found} of {expected} files"
                       for split, (found, expected) in missing.items())
    logging.warning(
        "gqn/%s: %s holds a partial download: %s. The dataset built from it has only their "
        "scenes; to build the whole release, fetch the rest with\n  %s", name, source, counts,
        released_format.GSUTIL_COMMAND.format(name=source.name, manual_dir=source.parent))


class Builder(tfds.core.GeneratorBasedBuilder):
  """GQN scenes: JPEG frames and raw camera records, one example per scene."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Released and generated GQN scenes, frames kept as JPEG bytes."}
  BUILDER_CONFIGS = [_config(name) for name in released_format.DATASETS] + [
      _config(GENERATED_PREFIX + name) for name in GENERATED_NAMES]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Fetch a released dataset into <manual_dir>/<name>/{train,test} with\n  "
      + released_format.GSUTIL_COMMAND.format(name="<name>", manual_dir="<manual_dir>")
      + "\nGenerated configs (generated_<name>) need no download.")

  def _info(self) -> tfds.core.DatasetInfo:
    spec = self.builder_config.scene_spec
    size = spec.frame_size
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            # Bytes passed to Image are stored as they are (TFDS encodes only arrays).
            "frames": tfds.features.Sequence(
                tfds.features.Image(shape=(size, size, 3), encoding_format="jpeg"),
                length=spec.frames_per_scene),
            "cameras": tfds.features.Tensor(
                shape=(spec.frames_per_scene, 5), dtype=np.float32),
            "scene": tfds.features.Text(),
        }),
        homepage="https://github.com/deepmind/gqn-datasets",
    )

  def _split_generators(self, dl_manager):
    source = self._source_dir(dl_manager)
    if not self.builder_config.generated:
      warn_if_partial(source, self.builder_config.name)
    return {split: self._generate_examples(source / split, split)
            for split in released_format.SPLITS}

  def _generate_examples(self, split_dir: epath.Path, split: str):
    beam = tfds.core.lazy_imports.apache_beam
    shards = [str(path) for path in scene_records.list_shards(split_dir)]
    convert = functools.partial(
        scene_records.scene_examples, spec=self.builder_config.scene_spec, split=split,
        skip_bad_records=self.builder_config.skip_bad_records)
    # Reshuffle breaks fusion with Create, so that the shards spread over all workers.
    return beam.Create(shards) | beam.Reshuffle() | beam.FlatMap(convert)

  def _source_dir(self, dl_manager) -> epath.Path:
    """<root>/<name>, the directory holding the train/ and test/ shards."""
    config = self.builder_config
    # The property raises when the directory is missing or empty; the path itself is wanted
    # here to name it in our message and to fall back for generated configs.
    manual_dir = getattr(dl_manager, "_manual_dir", None)
    manual_dir = epath.Path(manual_dir) if manual_dir else None
    if manual_dir is not None and _has_shards(manual_dir / config.source_name):
      return manual_dir / config.source_name
    if not config.generated:
      where = manual_dir or "<manual_dir>"
      raise FileNotFoundError(
          f"gqn/{config.name}: no shards under {where}/{config.source_name}/{{train,test}} "
          f"(--manual_dir={manual_dir}). Fetch the released data with\n  "
          + released_format.GSUTIL_COMMAND.format(name=config.source_name, manual_dir=where)
          + f"\nand pass --manual_dir={where}.")
    root = epath.Path(generated_root())
    if not _has_shards(root / config.source_name):
      logging.warning("gqn/%s: no scenes under %s or %s; generating %d train and %d test scenes "
                      "into %s", config.name, manual_dir, root / config.source_name,
                      config.generate_train_scenes, config.generate_test_scenes, root)
      from gqn_jax import generate  # pylint: disable=g-import-not-at-top
      generate.write_dataset(
          config.source_name, root, train_scenes=config.generate_train_scenes,
          test_scenes=config.generate_test_scenes,
          image_size=generated_frame_size(config.source_name))
    return root / config.source_name
