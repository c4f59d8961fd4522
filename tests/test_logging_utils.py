"""logging_utils.SummaryWriter over clu's metric writers: what reaches the event files."""

import io

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.util import tensor_util

import test_packaging
from gqn_jax import logging_utils


def read(directory):
  """{plugin: [(tag, step, value)]} of every event file in ``directory``."""
  found = {}
  for path in sorted(directory.glob("events.out.tfevents.*")):
    for event in event_file_loader.EventFileLoader(str(path)).Load():
      for value in event.summary.value:
        plugin = value.metadata.plugin_data.plugin_name
        if plugin == "hparams":
          content = value.metadata.plugin_data.content
          found.setdefault(plugin, []).append(
              (value.tag, event.step, plugin_data_pb2.HParamsPluginData.FromString(content)))
        else:
          found.setdefault(plugin, []).append(
              (value.tag, event.step, tensor_util.make_ndarray(value.tensor)))
  return found


def test_scalars_images_and_hparams_reach_the_event_files(tmp_path):
  writer = logging_utils.SummaryWriter(tmp_path / "tb")
  assert writer.writes_event_files
  pixels = np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8)
  writer.hparams({"model": {"layers": 12, "dtype": "bfloat16", "sizes": (1, 2)}, "lr": 5e-4})
  writer.scalars(3, {"train/loss": 7.5, "train/kl": np.float32(0.25)})
  writer.image(3, "images/grid", pixels)
  writer.flush()  # events are written from another thread until flushed.
  found = read(tmp_path / "tb")
  assert sorted((tag, step, float(v)) for tag, step, v in found["scalars"]) == [
      ("train/kl", 3, 0.25), ("train/loss", 3, 7.5)]
  [(tag, step, image)] = found["images"]
  assert (tag, step, int(image[0]), int(image[1])) == ("images/grid", 3, 10, 6)
  np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(image[2]))), pixels)
  session = [data.session_start_info.hparams for _, _, data in found["hparams"]
             if data.HasField("session_start_info")]
  assert session and session[0]["model.layers"].number_value == 12
  assert session[0]["model.dtype"].string_value == "bfloat16"
  assert session[0]["model.sizes"].string_value == "(1, 2)"
  writer.close()
  writer.close()  # a second close does nothing.


def test_other_processes_write_no_files(tmp_path):
  writer = logging_utils.SummaryWriter(tmp_path / "tb", enabled=False)
  writer.scalars(1, {"train/loss": 1.0})
  writer.image(1, "images/grid", np.zeros((2, 2, 3), np.uint8))
  writer.hparams({"a": 1})
  writer.close()
  assert not (tmp_path / "tb").exists()


def test_without_tensorflow_scalars_are_logged_and_the_extra_named(tmp_path):
  result = test_packaging.run_python(f"""
      import logging
      logging.basicConfig(level=logging.INFO)
      from gqn_jax import logging_utils
      writer = logging_utils.SummaryWriter({str(tmp_path / "tb")!r})
      writer.scalars(2, {{"train/loss": 3.5}})
      writer.close()
      print("event files:", writer.writes_event_files)
      """, blocked=("tensorflow",))
  assert result.returncode == 0, result.stderr
  assert "event files: False" in result.stdout
  assert "pip install 'gqn_jax[tensorboard]'" in result.stderr
  assert "train/loss=3.5" in result.stderr
  assert not list(tmp_path.rglob("events.out.tfevents.*"))
