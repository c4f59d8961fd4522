"""gqn_jax.load and pretrained.export: the Python API over a trained run, and a shipped copy."""

import pathlib

import jax
import ml_collections
import numpy as np
import pytest

import _figures_run
from gqn_jax import checkpoints
from gqn_jax import poses
from gqn_jax import pretrained
from gqn_jax.data import frames as frames_lib
from gqn_jax.model import GQN
from gqn_jax.model import latent_noise


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """A trained tiny run and its parameters-only export."""
  config = _figures_run.run_config("unused")
  state = _figures_run.trained_state()
  workdir = _figures_run.write_run(tmp_path_factory.mktemp("run") / "run", config, state)
  exported = pretrained.export(workdir, tmp_path_factory.mktemp("shipped") / "model")
  return config, state, workdir, exported


def _scene(rng, views, size, batch=None):
  lead = (views,) if batch is None else (batch, views)
  frames = rng.integers(0, 256, (*lead, size, size, 3), dtype=np.uint8)
  cameras = np.concatenate([rng.uniform(-3, 3, (*lead, 3)), rng.uniform(-3, 3, (*lead, 2))],
                           axis=-1).astype(np.float32)
  return frames, cameras


def test_export_keeps_the_parameters_and_drops_the_optimizer(run):
  _, state, workdir, exported = run
  model = pretrained.load(exported)
  assert model.step == int(state.step)
  for got, want in zip(jax.tree.leaves(model.params), jax.tree.leaves(state.params)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  # export returns an etils.epath path (local or gs://...), which has no rglob.
  size = lambda path: sum(f.stat().st_size for f in pathlib.Path(path).rglob("*") if f.is_file())
  # Adam's two moments are as large as the parameters: the export is about a third of the run.
  assert size(exported / "checkpoints") < 0.5 * size(workdir / "checkpoints")
  # What gqn-evaluate and gqn-render read (checkpoints.load_for_inference) accepts the export.
  config, params = checkpoints.load_for_inference(exported)
  assert config.model.to_dict() == _figures_run.run_config("unused").model.to_dict()
  assert jax.tree.structure(params) == jax.tree.structure(state.params)


def test_export_over_an_earlier_one_replaces_its_model_and_logs_but_keeps_the_card(run,
                                                                                  tmp_path):
  """Re-exporting a newer model into a shipped folder leaves no stale checkpoint step or event
  file (the training-curves figure would draw both runs) and keeps the hand-written card."""
  _, state, workdir, _ = run
  destination = tmp_path / "model"
  (destination / "checkpoints" / "99999").mkdir(parents=True)
  (destination / "tensorboard").mkdir()
  (destination / "tensorboard" / "events.out.tfevents.stale").write_bytes(b"old")
  (destination / "MODEL_CARD.md").write_text("card")
  pretrained.export(workdir, destination)
  assert sorted(p.name for p in (destination / "checkpoints").iterdir()) == [str(int(state.step))]
  assert not (destination / "tensorboard" / "events.out.tfevents.stale").exists()
  assert sorted(p.name for p in (destination / "tensorboard").rglob("*")) == sorted(
      p.name for p in (workdir / "tensorboard").rglob("*"))
  assert (destination / "MODEL_CARD.md").read_text() == "card"
  assert pretrained.load(destination).step == int(state.step)


def test_predict_is_the_model_rendered_from_its_representation(run):
  """predict == GQN.represent then GQN.render on the converted inputs, with the same noise."""
  _, state, _, exported = run
  model = pretrained.load(exported)
  cfg, size = model.config, model.config.image_size
  rng = np.random.default_rng(0)
  frames, cameras = _scene(rng, 3, size, batch=2)
  queries = _scene(rng, 2, size, batch=2)[1]
  key = jax.random.key(5)
  got = model.predict(frames, cameras, queries, key, samples=2)
  assert got.shape == (2, 2, 2, size, size, 3) and got.dtype == np.float32

  gqn = GQN(cfg)
  variables = {"params": state.params}
  r = gqn.apply(variables, frames / np.float32(255), poses.camera_to_pose(cameras, cfg.pose_order),
                None, method=GQN.represent)
  for sample in range(2):
    noise = latent_noise(jax.random.fold_in(key, sample), cfg, 4)
    for scene in range(2):
      for query in range(2):
        row = 2 * scene + query
        want = gqn.apply(variables, r[scene:scene + 1],
                         poses.camera_to_pose(queries[scene, query:query + 1], cfg.pose_order),
                         noise[row:row + 1], method=GQN.render)
        np.testing.assert_allclose(got[sample, scene, query], np.clip(want[0], 0, 1),
                                   rtol=1e-5, atol=1e-5)
  # Reproducible for a key, different for another; the samples differ from one another.
  np.testing.assert_array_equal(model.predict(frames, cameras, queries, key, samples=2), got)
  other = model.predict(frames, cameras, queries, jax.random.key(6), samples=2)
  assert not np.allclose(other, got)
  assert not np.allclose(got[0], got[1])


def test_inputs_in_any_accepted_form_give_the_same_prediction(run):
  model = pretrained.load(run[3])
  size = model.config.image_size
  rng = np.random.default_rng(1)
  frames, cameras = _scene(rng, 2, size, batch=2)
  queries = _scene(rng, 3, size, batch=2)[1]
  key = jax.random.key(0)
  batched = model.predict(frames, cameras, queries, key, samples=1)
  # uint8 and float frames / 255; one scene alone and the scene in a batch (the latents of
  # query q depend on its row, so the first scene of the batch matches the scene alone).
  as_float = model.predict(frames.astype(np.float32) / 255, cameras, queries, key, samples=1)
  np.testing.assert_allclose(as_float, batched, atol=1e-6)
  alone = model.predict(frames[0], cameras[0], queries[0], key, samples=1)
  np.testing.assert_allclose(alone, batched[:, 0], atol=1e-6)
  # Frames twice the model's size are resized as the input pipeline resizes them.
  large = np.repeat(np.repeat(frames, 2, axis=2), 2, axis=3)
  resized = frames_lib.resize(large.astype(np.float32) / 255, size)
  np.testing.assert_allclose(model.predict(large, cameras, queries, key, samples=1),
                             model.predict(resized, cameras, queries, key, samples=1), atol=1e-6)


@pytest.mark.parametrize("change, argument", [
    (lambda f, c, q: (f, c[..., :4], q), "context_cameras"),
    (lambda f, c, q: (f, c, q[..., :3]), "query_cameras"),
    (lambda f, c, q: (f, np.where(c == c.max(), np.nan, c), q), "context_cameras"),
    (lambda f, c, q: (f, c, np.full_like(q, np.inf)), "query_cameras"),
    (lambda f, c, q: (f[:1], c, q), "context_cameras"),
    (lambda f, c, q: (f[..., :2], c, q), "context_frames"),
    (lambda f, c, q: (f.astype(np.float32), c, q), "context_frames"),  # floats up to 255
])
def test_bad_inputs_name_the_argument(run, change, argument):
  model = pretrained.load(run[3])
  frames, cameras = _scene(np.random.default_rng(2), 2, model.config.image_size)
  queries = cameras[:1]
  frames, cameras, queries = change(frames, cameras, queries)
  with pytest.raises(ValueError, match=argument):
    model.predict(frames, cameras, queries, jax.random.key(0))


def test_load_names_a_path_without_a_model_and_a_foreign_architecture(run, tmp_path):
  with pytest.raises(FileNotFoundError, match=str(tmp_path / "nothing")):
    pretrained.load(tmp_path / "nothing")
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    pretrained.load(tmp_path / "empty")
  config, state, _, _ = run
  other = ml_collections.ConfigDict(config.to_dict())
  other.model.hidden_channels = 2 * config.model.hidden_channels
  workdir = _figures_run.write_run(tmp_path / "foreign", other, state)
  with pytest.raises(ValueError, match="do not fit"):
    pretrained.load(workdir)


def test_streamed_representation_is_the_sum_over_all_views(run):
  """Views added one at a time give the r of all of them at once; predictions follow r."""
  model = pretrained.load(run[3])
  size = model.config.image_size
  rng = np.random.default_rng(3)
  frames, cameras = _scene(rng, 4, size, batch=2)
  batch_stream, one_scene = model.stream(scenes=2), model.stream()
  for view in range(4):
    streamed = batch_stream.observe(frames[:, view], cameras[:, view])
    single = one_scene.observe(frames[1, view], cameras[1, view])
    want = model.represent(frames[:, :view + 1], cameras[:, :view + 1])
    np.testing.assert_allclose(streamed, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(single, want[1], rtol=1e-5, atol=1e-5)
  assert batch_stream.views == one_scene.views == 4
  queries = _scene(rng, 2, size)[1]
  key = jax.random.key(1)
  np.testing.assert_allclose(one_scene.predict(queries, key, samples=2),
                             model.predict(frames[1], cameras[1], queries, key, samples=2),
                             rtol=1e-5, atol=1e-5)


def test_stream_rejects_what_it_cannot_add(run):
  model = pretrained.load(run[3])
  size = model.config.image_size
  frames, cameras = _scene(np.random.default_rng(0), 1, size, batch=2)
  with pytest.raises(ValueError, match="no view observed yet"):
    _ = model.stream().r
  with pytest.raises(ValueError, match="frame: expected \\[H, W, 3\\]"):
    model.stream().observe(frames[0], cameras[0, 0])
  with pytest.raises(ValueError, match="a stream of 3 scenes"):
    model.stream(scenes=3).observe(frames[:, 0], cameras[:, 0])
  with pytest.raises(ValueError, match="context_cameras: holds NaN"):
    model.stream().observe(frames[0, 0], np.full(5, np.nan))
  with pytest.raises(ValueError, match="scenes: a positive integer"):
    model.stream(scenes=0)
