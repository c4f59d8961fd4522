"""Loads the TFDS builder of data/gqn the way `tfds build data/gqn` does, and builds with it."""

import pathlib

import tensorflow_datasets as tfds

DATASET_DIR = pathlib.Path(__file__).resolve().parents[1] / "data" / "gqn"


def builder_class():
  """The `Builder` of data/gqn/gqn_dataset_builder.py, imported as the tfds CLI imports it."""
  with tfds.core.utils.add_sys_path(DATASET_DIR.parent):
    return tfds.core.community.builder_cls_from_module(
        f"{DATASET_DIR.name}.gqn_dataset_builder")


def build(config, manual_dir, data_dir, beam_options: str | None = None):
  """Builds one config as array_record under data_dir; returns the prepared builder."""
  builder = builder_class()(config=config, data_dir=str(data_dir), file_format="array_record")
  download_config = tfds.download.DownloadConfig(manual_dir=str(manual_dir))
  if beam_options:
    import apache_beam as beam  # pylint: disable=g-import-not-at-top
    download_config.beam_options = beam.options.pipeline_options.PipelineOptions(
        beam_options.split(","))
  builder.download_and_prepare(download_config=download_config)
  return builder
