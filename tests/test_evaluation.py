"""Evaluation: metrics against hand-computed values, baselines, determinism, the CLI."""

import json
import math

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import _figures_run
from conftest import tiny_model_config
from gqn_jax import evaluate as evaluate_cli
from gqn_jax import evaluation
from gqn_jax import objective
from gqn_jax.figures import scenes as scenes_lib

SIZE = 16                                    # hand-made images.
IMAGE = tiny_model_config().image_size       # the tiny run's images.


def test_psnr_of_a_known_mse():
  """A uniform error of 0.1 is an MSE of 0.01: PSNR = -10 log10(0.01) = 20 dB."""
  target = jnp.full((2, SIZE, SIZE, 3), 0.5)
  assert np.allclose(evaluation.psnr(target + 0.1, target), 20.0, atol=1e-4)
  # MSE 0.25 * (0.2^2) + 0.75 * 0 = 0.01 as well, spread unevenly.
  prediction = target.at[:, : SIZE // 2, : SIZE // 2].add(0.2)
  assert np.allclose(evaluation.psnr(prediction, target), 20.0, atol=1e-4)


def test_metrics_broadcast_over_leading_axes():
  rng = np.random.default_rng(0)
  samples = rng.uniform(size=(3, 2, SIZE, SIZE, 3)).astype(np.float32)
  target = rng.uniform(size=(2, SIZE, SIZE, 3)).astype(np.float32)
  for metric in (evaluation.psnr, evaluation.ssim):
    together = metric(samples, target[None])
    assert together.shape == (3, 2)
    for s in range(3):
      np.testing.assert_allclose(together[s], metric(samples[s], target), rtol=1e-6)


def test_ssim_is_one_for_identical_images_and_less_otherwise():
  rng = np.random.default_rng(1)
  image = jnp.asarray(rng.uniform(size=(2, SIZE, SIZE, 3)), jnp.float32)
  np.testing.assert_allclose(evaluation.ssim(image, image), 1.0, atol=1e-5)
  noisy = jnp.clip(image + 0.2 * rng.normal(size=image.shape), 0, 1)
  assert np.all(evaluation.ssim(noisy, image) < 0.95)


def test_bits_per_dimension():
  dimensions = SIZE * SIZE * 3
  # ln 2 nats per dimension is one bit per dimension.
  assert math.isclose(evaluation.bits_per_dimension(dimensions * math.log(2.0), dimensions), 1.0)
  assert math.isclose(evaluation.bits_per_dimension(3.0 * dimensions, dimensions),
                      3.0 / math.log(2.0))


def test_nearest_view_picks_the_view_with_the_nearest_pose():
  """Views are constant images 0.1, 0.2, 0.3, 0.4; the query sits next to view 3 (index 2),
  view 4 is nearer still but masked out."""
  images = jnp.stack([jnp.full((SIZE, SIZE, 3), v) for v in (0.1, 0.2, 0.3, 0.4)])[None]
  poses = jnp.zeros((1, 4, 7))
  poses = poses.at[0, :, 0].set(jnp.array([0.0, 1.0, 2.0, 2.05]))  # positions along x.
  poses = poses.at[0, 1, 3].set(0.5)  # view 2 also turned: farther still.
  query = jnp.zeros((1, 7)).at[0, 0].set(2.1)
  mask = jnp.array([[True, True, True, False]])
  chosen = evaluation.nearest_view(images, poses, mask, query)
  np.testing.assert_array_equal(chosen, images[:, 2])
  # With every view real, view 4 wins.
  chosen = evaluation.nearest_view(images, poses, jnp.ones((1, 4), bool), query)
  np.testing.assert_array_equal(chosen, images[:, 3])


# --- Evaluation on the tiny run and dataset -----------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  """(config, model config, params, data_dir, mean image)."""
  data_dir, _ = _figures_run.prepared_data(tmp_path_factory)
  config = _figures_run.run_config(data_dir)
  params = _figures_run.trained_state().params
  mean = evaluation.mean_training_image(config, data_dir, scenes=4)
  return config, tiny_model_config(), params, data_dir, mean


def _evaluate(tiny, seed=0, scenes=4, samples=2):
  config, model_cfg, params, data_dir, mean = tiny
  batches, count = evaluation.held_out_batches(config, "test", data_dir, num_scenes=scenes,
                                               batch_size=2)
  assert count == scenes
  return evaluation.evaluate(model_cfg, params, batches, mean_image=mean, sigma=0.7, seed=seed,
                             samples=samples, total_scenes=count, progress=False)


def test_mean_training_image_is_the_mean_of_every_training_frame(tiny):
  config, _, _, data_dir, mean = tiny
  scenes = scenes_lib.read_scenes(config.data.dataset, "train", data_dir, count=4,
                                  image_size=IMAGE)
  frames = np.concatenate([scene.images() for scene in scenes])
  assert frames.shape == (40, IMAGE, IMAGE, 3)  # 4 scenes of 10 frames.
  np.testing.assert_allclose(mean, frames.mean(axis=0), atol=1e-6)
  # Read in chunks, the same mean.
  np.testing.assert_allclose(evaluation.mean_training_image(config, data_dir, scenes=4, chunk=3),
                             mean, atol=1e-6)


def test_batches_do_not_depend_on_the_batch_size(tiny):
  """A scene gets the same frames whatever batch it lands in (and the last batch is kept)."""
  config, _, _, data_dir, _ = tiny
  whole, count = evaluation.held_out_batches(config, "test", data_dir, num_scenes=5,
                                             batch_size=5)
  parts, same = evaluation.held_out_batches(config, "test", data_dir, num_scenes=5,
                                            batch_size=2)
  whole, parts = list(whole), list(parts)
  assert count == same == 5 and [len(b["query_pose"]) for b in parts] == [2, 2, 1]
  for key, value in whole[0].items():
    np.testing.assert_array_equal(np.concatenate([b[key] for b in parts]), value, err_msg=key)
  views = config.data.max_context_views
  for scene in range(5):  # K + 1 distinct frames per scene.
    frames = np.concatenate([whole[0]["context_poses"][scene], whole[0]["query_pose"][None, scene]])
    assert len(np.unique(frames, axis=0)) == views + 1


def test_evaluation_is_deterministic_and_seeded(tiny):
  first, second = _evaluate(tiny), _evaluate(tiny)
  assert json.dumps(first) == json.dumps(second)
  # Batches of another size: the same scenes, views and latent draws, the same numbers.
  config, model_cfg, params, data_dir, mean = tiny
  batches, _ = evaluation.held_out_batches(config, "test", data_dir, num_scenes=4, batch_size=4)
  regrouped = evaluation.evaluate(model_cfg, params, batches, mean_image=mean, sigma=0.7,
                                  samples=2, progress=False)
  for row, other in zip(first["results"], regrouped["results"]):
    for predictor in evaluation.PREDICTORS:
      for name, value in row[predictor].items():
        np.testing.assert_allclose(value["mean"], other[predictor][name]["mean"], rtol=1e-5,
                                   atol=1e-6, err_msg=f"{predictor} {name}")
  np.testing.assert_allclose(first["no_context"]["psnr"]["mean"],
                             regrouped["no_context"]["psnr"]["mean"], rtol=1e-5)
  other = _evaluate(tiny, seed=1)
  # The seed moves the latent draws (model metrics) and the frames drawn per scene.
  assert json.dumps(other["results"]) != json.dumps(first["results"])


def test_metrics_obey_their_definitions(tiny):
  config, model_cfg, _, data_dir, mean = tiny
  results = _evaluate(tiny)
  dimensions = 3 * IMAGE * IMAGE
  assert results["scenes"] == 4 and results["dimensions"] == dimensions
  views = config.data.max_context_views
  assert [row["context_views"] for row in results["results"]] == list(range(1, views + 1))
  floor = results["nll_floor_nats"]
  assert math.isclose(floor, dimensions * (0.5 * math.log(2 * math.pi) + math.log(0.7)))
  for row in results["results"]:
    for predictor in evaluation.PREDICTORS:
      metrics = {name: value["mean"] for name, value in row[predictor].items()}
      assert math.isclose(metrics["neg_elbo_nats"], metrics["nll_nats"] + metrics["kl_nats"],
                          rel_tol=1e-6)
      assert math.isclose(metrics["neg_elbo_bits_per_dim"],
                          metrics["neg_elbo_nats"] / (dimensions * math.log(2)), rel_tol=1e-6)
      assert metrics["nll_nats"] >= floor  # no prediction beats a perfect mean.
      assert metrics["kl_nats"] >= 0 and 0 < metrics["ssim"] <= 1
    assert row["nearest_view"]["kl_nats"]["mean"] == 0.0
    # The per-step KLs are the terms of the KL; samples that disagree have a positive variance.
    gqn = row["gqn"]
    assert len(gqn["kl_per_step"]["mean"]) == config.model.steps
    assert math.isclose(sum(gqn["kl_per_step"]["mean"]), gqn["kl_nats"]["mean"], rel_tol=1e-5)
    assert gqn["sample_variance"]["mean"] > 0
    # The mean image ignores the context: the same numbers for every M.
    assert row["mean_image"] == results["results"][0]["mean_image"]
  # By hand: the mean image baseline on the same 4 scenes.
  batches, _ = evaluation.held_out_batches(config, "test", data_dir, num_scenes=4, batch_size=4)
  batch = next(batches)
  targets = batch["query_image"]
  expected_nll = objective.gaussian_nll(targets, np.broadcast_to(mean, targets.shape), 0.7)
  expected_psnr = evaluation.psnr(np.broadcast_to(mean, targets.shape), targets)
  got = results["results"][0]["mean_image"]
  assert math.isclose(got["nll_nats"]["mean"], float(np.mean(expected_nll)), rel_tol=1e-5)
  assert math.isclose(got["psnr"]["mean"], float(np.mean(expected_psnr)), rel_tol=1e-5)
  # With one view the nearest view is that view.
  context = batch["context_images"][:, 0]
  one = results["results"][0]["nearest_view"]
  assert math.isclose(one["psnr"]["mean"], float(np.mean(evaluation.psnr(context, targets))),
                      rel_tol=1e-5)
  del model_cfg


def test_table_has_a_row_per_views_and_predictor(tiny):
  results = _evaluate(tiny)
  table = evaluation.format_table(results)
  rows = [line for line in table.splitlines()[3:]
          if line.strip() and not line.startswith(("KL", "Controls"))]
  assert len(rows) == len(results["results"]) * len(evaluation.PREDICTORS)
  controls = table.splitlines()[-1]
  assert f"r = 0) PSNR {results['no_context']['psnr']['mean']:.2f} dB" in controls
  assert controls.endswith(f"pose PSNR {results['other_pose']['psnr']['mean']:.2f} dB")
  kl_lines = [line for line in table.splitlines() if line.startswith("KL per generator step")]
  assert len(kl_lines) == len(results["results"])  # one per number of views, L values each
  assert all(len(line.split(":")[1].split()) == len(results["results"][0]["gqn"]
                                                      ["kl_per_step"]["mean"]) for line in kl_lines)
  for row in results["results"]:
    value = f"{row['gqn']['neg_elbo_nats']['mean']:.1f}"
    assert any(line.split()[0] == str(row["context_views"]) and value in line for line in rows)


def test_markdown_table_restates_the_results(tiny):
  """One row per M whose cells are the JSON's numbers, differences included."""
  results = _evaluate(tiny)
  lines = evaluation.format_markdown(results).splitlines()
  rows = [line for line in lines if line.startswith("| ") and line[2].isdigit()]
  assert len(rows) == len(results["results"])
  for line, row in zip(rows, results["results"]):
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    gqn, nearest = row["gqn"], row["nearest_view"]
    assert int(cells[0]) == row["context_views"]
    assert float(cells[2]) == pytest.approx(gqn["psnr"]["mean"], abs=0.005)
    assert float(cells[6]) == pytest.approx(gqn["psnr"]["mean"] - nearest["psnr"]["mean"],
                                            abs=0.005)
    assert float(cells[8]) == pytest.approx(gqn["psnr_reconstruction"]["mean"], abs=0.005)
    assert float(cells[9]) == pytest.approx(results["no_context"]["psnr"]["mean"], abs=0.005)
    assert float(cells[10]) == pytest.approx(results["other_pose"]["psnr"]["mean"], abs=0.005)
    assert len(cells[13].split()) == len(gqn["kl_per_step"]["mean"])


def _zero_weights_reading(params, input_name: str):
  """``params`` with the generator cores' weights on one of their inputs ('r' or the query
  'pose') zeroed: the generator no longer reads that input."""
  return jax.tree_util.tree_map_with_path(
      lambda path, x: np.zeros_like(x) if any(getattr(k, "key", None) == input_name
                                              for k in path) else x, params)


def test_no_context_prediction_is_the_prediction_from_r_zero(tiny):
  """results['no_context'] scores the same draws rendered from r = 0: a model whose generator
  gets no r weights (they are zeroed) scores the same with and without its context, at every M."""
  config, model_cfg, params, data_dir, mean = tiny
  batch = next(evaluation.held_out_batches(config, "test", data_dir, num_scenes=2,
                                           batch_size=2)[0])
  blind = _zero_weights_reading(params, "r")
  for weights, same in ((blind, True), (params, False)):
    results = evaluation.evaluate(model_cfg, weights, [batch], mean_image=mean, sigma=0.7,
                                  samples=2, progress=False)
    no_context = results["no_context"]["psnr"]["mean"]
    for row in results["results"]:
      own = row["gqn"]["psnr"]["mean"]
      assert (own == pytest.approx(no_context, abs=1e-5)) == same, (own, no_context)


def test_other_pose_control_is_the_prediction_at_the_first_context_views_pose(tiny):
  """results['other_pose'] renders the K-view prediction at context view 1's pose: a model whose
  generator gets no query-pose weights (zeroed) scores there what it scores at the query pose
  with K views; the trained model, whose rendering depends on the pose, does not. And with the
  query placed at view 1's pose the control is the model's own K-view prediction."""
  config, model_cfg, params, data_dir, mean = tiny
  batch = next(evaluation.held_out_batches(config, "test", data_dir, num_scenes=2,
                                           batch_size=2)[0])
  blind = _zero_weights_reading(params, "pose")
  for weights, same in ((blind, True), (params, False)):
    results = evaluation.evaluate(model_cfg, weights, [batch], mean_image=mean, sigma=0.7,
                                  samples=2, progress=False)
    own = results["results"][-1]["gqn"]["psnr"]["mean"]
    other = results["other_pose"]["psnr"]["mean"]
    assert (own == pytest.approx(other, abs=1e-5)) == same, (own, other)
  moved = dict(batch, query_pose=batch["context_poses"][:, 0].copy())
  results = evaluation.evaluate(model_cfg, params, [moved], mean_image=mean, sigma=0.7,
                                samples=2, progress=False)
  assert results["other_pose"]["psnr"]["mean"] == pytest.approx(
      results["results"][-1]["gqn"]["psnr"]["mean"], abs=1e-5)


def test_evaluate_refuses_padded_context(tiny):
  config, model_cfg, params, data_dir, mean = tiny
  batches, _ = evaluation.held_out_batches(config, "test", data_dir, num_scenes=2, batch_size=2)
  batch = next(batches)
  batch["context_mask"][:, -1] = False
  with pytest.raises(ValueError, match="context_mask"):
    evaluation.evaluate(model_cfg, params, [batch], mean_image=mean, sigma=0.7, progress=False)


# --- The command line ----------------------------------------------------------------------------

def _cli(argv):
  flag_values = flags.FlagValues()
  evaluate_cli.define_flags(flag_values)
  flag_values(["gqn-evaluate", *argv])
  return evaluate_cli.evaluate_run(flag_values)


def test_cli_writes_identical_json_twice(tiny, tmp_path, monkeypatch):
  config, _, params, _, _ = tiny
  state = _figures_run.trained_state(0).replace(params=params, step=np.int32(7))
  workdir = _figures_run.write_run(tmp_path / "run", config, state)
  arguments = [f"--workdir={workdir}", "--num_scenes=4", "--batch_size=2", "--samples=2",
               "--mean_image_scenes=1000", "--progress=false"]
  results, first = _cli(arguments + [f"--output={tmp_path / 'a.json'}"])
  _, second = _cli(arguments + [f"--output={tmp_path / 'b.json'}"])
  assert first.read_bytes() == second.read_bytes()
  assert first.with_suffix(".md").read_text().startswith("4 held-out scenes")
  saved = json.loads(first.read_text())
  assert saved["dataset"] == _figures_run.DATASET and saved["split"] == "test"
  # The record says how many scenes were used: all 43 training scenes, not the 1000 asked for.
  assert saved["step"] == 7 and saved["scenes"] == 4 and saved["mean_image_scenes"] == 43
  assert saved["sigma"] == config.optim.sigma_final and saved == json.loads(json.dumps(results))
  # A relative --workdir (orbax itself takes absolute paths only); the default output goes
  # into the run's directory.
  monkeypatch.chdir(tmp_path)
  relative = [f"--workdir={workdir.name}"] + arguments[1:]
  _, default = _cli(relative)
  assert default.resolve() == workdir / "evaluation_test.json"


def test_cli_names_a_workdir_without_a_checkpoint(tmp_path):
  with pytest.raises(FileNotFoundError, match="missing: no such directory"):
    _cli([f"--workdir={tmp_path / 'missing'}"])
  with pytest.raises(FileNotFoundError, match=f"no checkpoint in workdir {tmp_path}"):
    _cli([f"--workdir={tmp_path}"])


def test_held_out_curve_scores_each_step_as_gqn_evaluate_does_and_once(tiny, tmp_path):
  """experiments/held_out_curve.py: its row for a step holds gqn-evaluate's numbers for that
  step, its training time integrates the logged rates, and a rerun evaluates nothing again."""
  from experiments import held_out_curve  # pylint: disable=g-import-not-at-top
  from gqn_jax import logging_utils  # pylint: disable=g-import-not-at-top
  config, _, params, _, _ = tiny
  state = _figures_run.trained_state(0).replace(params=params, step=np.int32(7))
  workdir = _figures_run.write_run(tmp_path / "run", config, state)
  writer = logging_utils.SummaryWriter(workdir / "tensorboard")
  writer.scalars(4, {held_out_curve.RATE_TAG: 2.0})   # 4 steps at 2 steps/s: 2 s
  writer.scalars(10, {held_out_curve.RATE_TAG: 0.1})  # 6 more at 0.1 steps/s: 60 s more
  writer.close()
  steps, seconds = held_out_curve.training_seconds(workdir)
  np.testing.assert_allclose(seconds, [2.0, 62.0])
  assert list(steps) == [4, 10]

  output = tmp_path / "curve.md"
  held_out_curve.main([f"--workdir={workdir}", "--num_scenes=4", f"--output={output}"])
  scored = workdir / "curve" / "step_7.json"
  curve = json.loads(scored.read_text())
  direct, _ = _cli([f"--workdir={workdir}", "--num_scenes=4", "--progress=false",
                    f"--output={tmp_path / 'direct.json'}"])
  # The same numbers up to float rounding (the subprocess may compile with other XLA flags).
  leaves = lambda tree: jax.tree.leaves(json.loads(json.dumps(tree)))
  assert jax.tree.structure(curve) == jax.tree.structure(json.loads(json.dumps(direct)))
  for got, want in zip(leaves(curve), leaves(direct)):
    if isinstance(want, float):
      assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
    else:
      assert got == want
  psnr_1, psnr_k = (direct["results"][i]["gqn"]["psnr"]["mean"] for i in (0, -1))
  other_pose = direct["other_pose"]["psnr"]["mean"]
  # Step 7 lies 3 steps into the second interval: 2 s + 30 s.
  assert f"| 7 | 0.5 | {psnr_1:.2f} | {psnr_k:.2f} | {other_pose:.2f} |" in output.read_text()
  written = scored.stat().st_mtime_ns
  held_out_curve.main([f"--workdir={workdir}", "--num_scenes=4", f"--output={output}"])
  assert scored.stat().st_mtime_ns == written
  with pytest.raises(SystemExit, match="no checkpoint of step"):
    held_out_curve.main([f"--workdir={workdir}", "--steps", "8"])
