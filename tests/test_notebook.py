"""examples/novel_views.ipynb runs from top to bottom on a tiny trained run."""

import json
import pathlib

import matplotlib
import numpy as np

import _data_builder
import _figures_run

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "examples" / "novel_views.ipynb"


def test_notebook_runs_and_predicts_every_unseen_view(tmp_path, tmp_path_factory, monkeypatch):
  matplotlib.use("Agg")  # plt.show() draws nothing
  data_dir, _, _ = _data_builder.prepared(tmp_path_factory)
  shard = next((data_dir.parent / "manual" / _figures_run.DATASET / "test").glob("*.tfrecord"))
  workdir = _figures_run.write_run(tmp_path / "run", _figures_run.run_config(data_dir),
                                   _figures_run.trained_state())
  monkeypatch.setenv("GQN_MODEL", str(workdir))
  monkeypatch.setenv("GQN_SCENES", str(shard))
  monkeypatch.setenv("GQN_SCENE_INDEX", "2")
  notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
  namespace = {"__name__": "__main__"}
  for cell in notebook["cells"]:
    if cell["cell_type"] == "code":
      exec(compile("".join(cell["source"]), f"{NOTEBOOK.name} cell {cell['id']}", "exec"),
           namespace)
  size = namespace["model"].config.image_size
  queries = len(namespace["frames"]) - namespace["context_views"]
  assert namespace["samples"].shape == (4, queries, size, size, 3)
  np.testing.assert_allclose(namespace["prediction"], namespace["samples"].mean(axis=0))
  assert namespace["turned"].shape == (8, size, size, 3)
