"""Loads the TFDS builder of data/gqn the way `tfds build data/gqn` does, and builds with it."""

import pathlib

import tensorflow_datasets as tfds

import _data_records

DATASET_DIR = pathlib.Path(__file__).resolve().parents[1] / "data" / "gqn"
_PREPARED = {}


def builder_class():
  """The `Builder` of data/gqn/gqn_dataset_builder.py, imported as the tfds CLI imports it."""
  with tfds.core.utils.add_sys_path(DATASET_DIR.parent):
    return tfds.core.community.builder_cls_from_module(
        f"{DATASET_DIR.name}.gqn_dataset_builder")


def builder_module():
  import sys  # pylint: disable=g-import-not-at-top
  builder_class()
  return sys.modules[f"{DATASET_DIR.name}.gqn_dataset_builder"]


def build(config, manual_dir, data_dir, beam_options: str | None = None):
  """Builds one config (a name or a GqnConfig) as array_record; returns the prepared builder."""
  builder = builder_class()(config=config, data_dir=str(data_dir), file_format="array_record")
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  download_config = tfds.download.DownloadConfig(manual_dir=str(manual_dir))
  # Explicit options, even none: without them Beam parses pytest's sys.argv.
  download_config.beam_options = beam.options.pipeline_options.PipelineOptions(
      beam_options.split(",") if beam_options else [])
  builder.download_and_prepare(download_config=download_config)
  return builder


def prepared(tmp_path_factory, name="rooms_ring_camera", train=43, test=9, per_shard=10):
  """Hand-written scenes built once per test session: (data_dir, builder, written scenes)."""
  key = (name, train, test, per_shard)
  if key not in _PREPARED:
    root = tmp_path_factory.mktemp(f"gqn_{name}")
    written = _data_records.write_dataset(
        root / "manual", name, {"train": train, "test": test}, per_shard)
    builder = build(name, root / "manual", root / "tfds")
    _PREPARED[key] = (root / "tfds", builder, written)
  return _PREPARED[key]
