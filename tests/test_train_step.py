"""The training step program: finite gradients, learning, determinism, metrics, donation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_batch, tiny_model_config, tiny_optim_config
from gqn_jax import objective
from gqn_jax import schedules
from gqn_jax import train_step as ts
from gqn_jax import parallel
from gqn_jax.model import GQN, latent_noise


@pytest.mark.parametrize("representation", ["pyramid", "tower", "pool"])
@pytest.mark.parametrize("share_cores", [False, True], ids=["unshared", "shared"])
def test_gradients_finite_and_nonzero(representation, share_cores, key):
  cfg = tiny_model_config(representation=representation, share_cores=share_cores)
  model = GQN(cfg)
  params = ts.init_params(model, key)
  batch = random_batch(cfg, jax.random.key(1))
  noise = latent_noise(jax.random.key(2), cfg, 2)
  grads = jax.grad(lambda p: model.apply({"params": p}, batch, 1.0, noise,
                                         method=GQN.elbo_terms).loss.mean())(params)
  for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
    name = jax.tree_util.keystr(path)
    assert jnp.all(jnp.isfinite(g)), name
    assert jnp.any(g != 0), f"{name} gets no gradient"


def _one_device():
  return parallel.data_mesh(jax.devices()[:1])


def _train(cfg, optim_cfg, batch, steps, seed=0):
  model = GQN(cfg)
  state = ts.create_train_state(model, optim_cfg, jax.random.key(seed))
  step = ts.make_train_step(model, optim_cfg, _one_device())
  history = []
  for _ in range(steps):
    state, metrics = step(state, batch, jax.random.key(seed + 1))
    history.append(jax.device_get(metrics))
  return state, history


def test_overfits_one_batch():
  """On one fixed batch the model learns what no context-free predictor can.

  Every view of scene b is a flat image of colour c_b. sigma is held at 0.5, so the NLL floor
  (mean == target) is fixed. The best prediction that ignores the context, the batch's mean
  image, stays ~240 nats above that floor; the model, which reads c_b from its context views,
  must come within a small fraction of that.
  """
  cfg = tiny_model_config()
  optim_cfg = tiny_optim_config(sigma_initial=0.5, sigma_final=0.5, lr_initial=3e-3,
                                lr_final=3e-3)
  batch = random_batch(cfg, jax.random.key(3), batch_size=8)
  colours = jax.random.uniform(jax.random.key(4), (8, 1, 1, 3))
  batch["query_image"] = jnp.broadcast_to(colours, batch["query_image"].shape)
  batch["context_images"] = jnp.broadcast_to(colours[:, None], batch["context_images"].shape)
  floor = objective.nll_floor_per_value(0.5) * cfg.image_size ** 2 * 3
  batch_mean = jnp.mean(batch["query_image"], axis=0, keepdims=True)
  context_free = float(jnp.mean(objective.gaussian_nll(batch["query_image"], batch_mean, 0.5)))
  _, history = _train(cfg, optim_cfg, batch, steps=100)
  first = history[0]["loss"] - floor
  last = np.mean([m["loss"] for m in history[-5:]]) - floor
  assert last < 0.05 * (context_free - floor), (first, last, context_free - floor)
  assert last < 0.02 * first, (first, last)


def test_same_seed_same_parameters():
  cfg, optim_cfg = tiny_model_config(), tiny_optim_config()
  batch = random_batch(cfg, jax.random.key(3))
  a, _ = _train(cfg, optim_cfg, batch, steps=3)
  b, _ = _train(cfg, optim_cfg, batch, steps=3)
  c, _ = _train(cfg, optim_cfg, batch, steps=3, seed=7)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    np.testing.assert_array_equal(x, y)
  assert not all(np.array_equal(x, y)
                 for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(c.params)))


def test_metrics_follow_the_schedules():
  cfg, optim_cfg = tiny_model_config(), tiny_optim_config()
  batch = random_batch(cfg, jax.random.key(3))
  state, history = _train(cfg, optim_cfg, batch, steps=3)
  assert int(state.step) == 3
  for step, metrics in enumerate(history):
    np.testing.assert_allclose(metrics["learning_rate"],
                               schedules.learning_rate(optim_cfg)(step), rtol=1e-6)
    np.testing.assert_allclose(metrics["sigma"], schedules.pixel_sigma(optim_cfg)(step),
                               rtol=1e-6)
    np.testing.assert_allclose(metrics["loss"], metrics["nll"] + metrics["kl"], rtol=1e-5)
    np.testing.assert_allclose(metrics["kl_per_step"].sum(), metrics["kl"], rtol=1e-5)
    pixels = cfg.image_size ** 2 * 3
    np.testing.assert_allclose(metrics["loss_bits_per_dim"] * np.log(2) * pixels,
                               metrics["loss"], rtol=1e-5)
    assert metrics["kl_per_step"].shape == (cfg.steps,)
    for name in ("grad_norm", "param_norm", "update_norm"):
      assert np.isfinite(metrics[name]) and metrics[name] > 0


def test_step_donates_the_old_state():
  cfg, optim_cfg = tiny_model_config(), tiny_optim_config()
  model = GQN(cfg)
  state = ts.create_train_state(model, optim_cfg, jax.random.key(0))
  old_leaf = jax.tree.leaves(state.params)[0]
  step = ts.make_train_step(model, optim_cfg, _one_device())
  step(state, random_batch(cfg, jax.random.key(1)), jax.random.key(2))
  assert old_leaf.is_deleted()


def test_noise_of_a_scene_does_not_depend_on_the_batch_split():
  cfg = tiny_model_config()
  rng = jax.random.key(5)
  whole = latent_noise(rng, cfg, 6)
  halves = [latent_noise(rng, cfg, 3, offset) for offset in (0, 3)]
  np.testing.assert_array_equal(whole, jnp.concatenate(halves))
