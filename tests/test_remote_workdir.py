"""A gs:// workdir end to end: gqn-evaluate, gqn-render and gqn_jax.load read it and write to it.

No bucket is reachable here, so ``gs://`` is served from a local directory where storage is
reached, and nowhere above that:

* etils.epath opens ``gs://`` paths with fsspec's ``gcs`` filesystem (its backend without
  TensorFlow; gcsfs provides the filesystem against a bucket): here fsspec's DirFileSystem over
  the local directory. TensorFlow is installed here, so epath is told it is not (else it would
  use tf.io.gfile, which reaches GCS itself).
* orbax hands TensorStore a ``gcs`` kvstore spec for arrays at a ``gs://`` path: here a
  ``file`` spec of the same directory; and it asks the bucket (google-cloud-storage) whether
  it has a hierarchical namespace: here it has none.

Everything between, the code under test and orbax's own ``gs://`` handling, runs as it would
against a bucket. A write that went through pathlib or open() instead of epath would land in a
local ``gs:`` directory, or fail, rather than in the bucket.
"""

import importlib
import json
import shutil

from absl import flags
from etils.epath import backend as epath_backend
from etils.epath import gpath
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem
import jax
import numpy as np
from orbax.checkpoint._src.path import gcs_utils
import pytest

import _figures_run
from gqn_jax import evaluate as evaluate_cli
from gqn_jax import pretrained
from gqn_jax import render

RUN = "gs://bucket/run"
EVALUATE_FLAGS = ("--num_scenes=2", "--batch_size=2", "--samples=1", "--mean_image_scenes=2",
                  "--progress=false")
FIGURES = {  # figure -> (output file, flags): one that reads a checkpoint, one event files only.
    "novel_views": ("novel_views.png", ("--scenes=1", "--samples=1")),
    "flyaround": ("fly.gif", ("--ring_size=2",)),
    "training_curves": ("curves.png", ()),
}


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
  """A trained tiny run with event files, named 'run' as the bucket's is (figure titles)."""
  data_dir, _ = _figures_run.prepared_data(tmp_path_factory)
  workdir = _figures_run.write_run(tmp_path_factory.mktemp("local") / "run",
                                   _figures_run.run_config(data_dir), _figures_run.trained_state())
  _figures_run.write_events(workdir / "tensorboard", steps=range(0, 60, 5))
  return workdir


@pytest.fixture
def bucket(tmp_path, monkeypatch):
  """The local directory that gs:// stands for in this test; gs://bucket/run holds the run."""
  root = tmp_path / "gcs"
  root.mkdir()

  class LocalGcs(DirFileSystem):
    protocol = ("gs", "gcs")

    def __init__(self, **options):  # epath passes gcsfs options (finalize_on_close).
      del options
      super().__init__(path=str(root), fs=LocalFileSystem())

  def tensorstore_spec(path):
    bucket_name, key = gcs_utils.parse_gcs_path(path, add_trailing_slash=False)
    return {"driver": "file", "path": str(root / bucket_name / key)}

  monkeypatch.setattr(gpath, "_is_tf_installed", lambda: False)
  monkeypatch.setitem(importlib.import_module("fsspec.registry")._registry, "gcs", LocalGcs)
  monkeypatch.setattr(gcs_utils, "get_kvstore_for_gcs", tensorstore_spec)
  monkeypatch.setattr(gcs_utils, "is_hierarchical_namespace_enabled", lambda path: False)
  monkeypatch.chdir(tmp_path)  # a write that missed epath would make tmp_path/gs:.
  epath_backend.fsspec_backend._get_filesystem.cache_clear()  # pylint: disable=protected-access
  yield root
  epath_backend.fsspec_backend._get_filesystem.cache_clear()  # pylint: disable=protected-access
  assert not (tmp_path / "gs:").exists()


def _in_bucket(root, url):
  """Where a gs:// URL's object lies in the local directory that stands for the bucket."""
  assert url.startswith("gs://")
  return root / url.removeprefix("gs://")


def _upload(local_run, root):
  shutil.copytree(local_run, _in_bucket(root, RUN))


def _evaluate(*argv):
  flag_values = flags.FlagValues()
  evaluate_cli.define_flags(flag_values)
  flag_values(["gqn-evaluate", *argv])
  return evaluate_cli.evaluate_run(flag_values)


def _render(figure, workdir, output, *options):
  flag_values = flags.FlagValues()
  render.define_flags(flag_values)
  flag_values(["gqn-render", f"--workdir={workdir}", f"--output={output}", *options])
  return render.render(["gqn-render", figure], flag_values)


def test_evaluate_reads_the_run_and_writes_its_json_into_the_bucket(local_run, bucket, tmp_path):
  _upload(local_run, bucket)
  results, output = _evaluate(f"--workdir={RUN}", *EVALUATE_FLAGS)
  assert str(output) == f"{RUN}/evaluation_test.json"
  written = json.loads(_in_bucket(bucket, str(output)).read_text())
  assert written == json.loads(json.dumps(results)) and written["workdir"] == RUN
  # The local run's numbers, to the byte but for the workdir each names.
  expected, _ = _evaluate(f"--workdir={local_run}", f"--output={tmp_path / 'local.json'}",
                          *EVALUATE_FLAGS)
  assert {**written, "workdir": None} == json.loads(json.dumps({**expected, "workdir": None}))


def test_figures_read_the_run_and_write_into_the_bucket(local_run, bucket, tmp_path):
  _upload(local_run, bucket)
  for figure, (name, options) in FIGURES.items():
    output = _render(figure, RUN, f"{RUN}/figures/{name}", *options)
    assert str(output) == f"{RUN}/figures/{name}"
    expected = _render(figure, local_run, tmp_path / name, *options)
    assert _in_bucket(bucket, str(output)).read_bytes() == expected.read_bytes(), figure


def test_load_and_export_a_run_in_the_bucket(local_run, bucket):
  _upload(local_run, bucket)
  model = pretrained.load(RUN)
  assert str(model.path) == RUN and model.step == int(_figures_run.trained_state().step)
  for got, want in zip(jax.tree.leaves(model.params),
                       jax.tree.leaves(_figures_run.trained_state().params)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  shipped = pretrained.export(RUN, "gs://bucket/shipped")
  assert str(shipped) == "gs://bucket/shipped"
  events = sorted(p.name for p in (local_run / "tensorboard").iterdir())
  assert sorted(p.name for p in (bucket / "bucket/shipped/tensorboard").iterdir()) == events
  assert pretrained.load(shipped).step == model.step


def test_a_missing_run_in_the_bucket_is_named(bucket):
  with pytest.raises(FileNotFoundError, match="gs://bucket/nothing: no such directory"):
    pretrained.load("gs://bucket/nothing")
  with pytest.raises(FileNotFoundError, match="--workdir=gs://bucket/nothing: no such"):
    _evaluate("--workdir=gs://bucket/nothing")
  with pytest.raises(FileNotFoundError, match="--workdir=gs://bucket/nothing: no such"):
    _render("training_curves", "gs://bucket/nothing", "gs://bucket/c.png")
