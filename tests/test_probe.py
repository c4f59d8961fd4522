"""gqn_jax.probe: read-outs of scene factors from r, an untrained r and pixels."""

import json

from absl import flags
import numpy as np
import pytest

import _figures_run
from gqn_jax import checkpoints
from gqn_jax import probe


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  data_dir, written = _figures_run.prepared_data(tmp_path_factory)
  root = tmp_path_factory.mktemp("probe")
  workdir = _figures_run.write_run(root / "run", _figures_run.run_config(data_dir),
                                   _figures_run.trained_state())
  scenes_dir = _figures_run.write_factors(root / "scenes", written["test"])
  return workdir, scenes_dir


def test_a_linear_factor_is_read_and_a_constant_one_exactly():
  """Features on a sphere round a centre (so the read-outs' per-scene normalisation keeps them
  linear): a linear factor is read almost perfectly, a constant one exactly."""
  rng = np.random.default_rng(0)
  directions = rng.normal(size=(250, 6))
  x = 3.0 + directions / np.linalg.norm(directions, axis=1, keepdims=True)
  x_train, x_test = x[:200], x[200:]
  weights = rng.normal(size=(6, 2))
  number = probe.Factor("linear", "number", None)
  result = probe.fit_and_score(number, "linear", x_train, x_train @ weights, x_test,
                               x_test @ weights)
  assert result["score"] > 0.98, result
  constant = probe.fit_and_score(number, "linear", x_train, np.full(200, 2.5), x_test,
                                 np.full(50, 2.5))
  assert constant["rmse"] < 1e-9
  category = probe.Factor("one colour", "category", None)
  for readout in probe.READOUTS:
    same = probe.fit_and_score(category, readout, x_train, np.array(["red"] * 200, object),
                               x_test, np.array(["red"] * 50, object))
    assert same["score"] == 1.0


def test_a_category_split_by_a_feature_is_learnt_and_chance_without_one():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(400, 5))
  labels = np.where(x[:, 0] > 0, "left", "right").astype(object)
  category = probe.Factor("side", "category", None)
  learnt = probe.fit_and_score(category, "linear", x[:300], labels[:300], x[300:], labels[300:])
  assert learnt["score"] > 0.95
  noise = rng.normal(size=(400, 5))
  chance = probe.fit_and_score(category, "linear", noise[:300], labels[:300], noise[300:],
                               labels[300:])
  assert 0.3 < chance["score"] < 0.7


def test_label_counts_are_decades_then_all():
  assert probe.label_counts(5) == [5]
  assert probe.label_counts(300) == [10, 100, 300]
  assert probe.label_counts(1000) == [10, 100, 1000]


def test_probe_scores_every_feature_set_on_the_same_held_out_scenes(run):
  workdir, scenes_dir = run
  checkpoint = checkpoints.load(workdir)
  results = probe.probe(checkpoint, data_dir=checkpoint.config.data.data_dir,
                        scenes_dir=scenes_dir, split="test", label_split="test", eval_scenes=4,
                        label_scenes=5, views=2)
  assert len(results["evaluated_scenes"]) == 4 and results["label_counts"] == [5]
  factors = results["factors"]
  assert set(factors) == {f.name for f in probe.factors_of({"objects": []})}
  for entry in factors.values():
    assert set(entry["curves"]) == {f"{n} / {r}" for n in probe.FEATURES for r in probe.READOUTS}
    for curve in entry["curves"].values():
      assert len(curve) == 1 and np.isfinite(curve[0]["score"])
  # Every scene's wall is red (_figures_run.write_factors): every read-out is exact.
  for curve in factors["wall_colour"]["curves"].values():
    assert curve[0]["score"] == 1.0


def test_probe_command_writes_the_figure_and_its_table(run, tmp_path):
  workdir, scenes_dir = run
  flag_values = flags.FlagValues()
  probe.define_flags(flag_values)
  output = tmp_path / "probe.png"
  flag_values(["gqn-probe", f"--workdir={workdir}", f"--output={output}",
               f"--scenes_dir={scenes_dir}", "--split=test", "--label_split=test",
               "--eval_scenes=3", "--label_scenes=4", "--context_views=2"])
  assert probe.main(["gqn-probe"], flag_values) is None  # absl would exit with a returned value.
  assert output.stat().st_size > 0
  table = json.loads(output.with_suffix(".json").read_text())
  assert table["step"] == checkpoints.load(workdir).step and table["views"] == 2
  flag_values.eval_scenes = 1
  with pytest.raises(SystemExit, match="--eval_scenes must be at least 2"):
    probe.main(["gqn-probe"], flag_values)
