"""The ELBO's terms against closed forms, Monte Carlo and the spec's numbers."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from gqn_jax import objective


def test_kl_matches_monte_carlo(key):
  k = jax.random.split(key, 5)
  shape = (6,)
  mean_q, mean_p = jax.random.normal(k[0], shape), jax.random.normal(k[1], shape)
  log_scale_q = 0.5 * jax.random.normal(k[2], shape)
  log_scale_p = 0.5 * jax.random.normal(k[3], shape)
  samples = 400_000
  z = mean_q + jnp.exp(log_scale_q) * jax.random.normal(k[4], (samples,) + shape)

  def log_density(z, mean, log_scale):
    return (-objective.HALF_LOG_TWO_PI - log_scale
            - 0.5 * jnp.square((z - mean) * jnp.exp(-log_scale)))

  log_ratio = log_density(z, mean_q, log_scale_q) - log_density(z, mean_p, log_scale_p)
  estimate = jnp.mean(log_ratio, axis=0)
  standard_error = jnp.std(log_ratio, axis=0) / math.sqrt(samples)
  exact = objective.gaussian_kl(mean_q, log_scale_q, mean_p, log_scale_p)
  assert jnp.all(jnp.abs(estimate - exact) < 5 * standard_error + 1e-6), (estimate, exact)


def test_kl_of_identical_gaussians_is_zero_and_positive_otherwise(key):
  mean, log_scale = jax.random.normal(key, (2, 10))
  np.testing.assert_allclose(objective.gaussian_kl(mean, log_scale, mean, log_scale), 0,
                             atol=1e-6)
  assert jnp.all(objective.gaussian_kl(mean, log_scale, mean + 0.1, log_scale) > 0)


def test_nll_floor_matches_spec():
  """mean == target at sigma 0.7: 0.562264 nats per sub-pixel, 6909.1 per 64x64x3 image."""
  image = jnp.full((1, 64, 64, 3), 0.3)
  np.testing.assert_allclose(objective.nll_floor_per_value(0.7), 0.562264, atol=1e-6)
  np.testing.assert_allclose(objective.gaussian_nll(image, image, 0.7), [6909.1], atol=0.05)


def test_nll_closed_form(key):
  target, mean = jax.random.uniform(key, (2, 3, 4, 4, 3))
  sigma = 1.3
  expected = [sum(-math.log(math.exp(-0.5 * ((float(t) - float(m)) / sigma) ** 2)
                            / (sigma * math.sqrt(2 * math.pi)))
                  for t, m in zip(np.ravel(target[b]), np.ravel(mean[b]))) for b in range(3)]
  np.testing.assert_allclose(objective.gaussian_nll(target, mean, sigma), expected, rtol=1e-5)


def _terms(key, batch=8, steps=4):
  k = jax.random.split(key, 2)
  kl_per_step = jnp.exp(jax.random.normal(k[0], (batch, steps)))  # positive, around 1 nat
  nll = jax.random.normal(k[1], (batch,))
  return objective.ElboTerms(nll=nll, kl=jnp.sum(kl_per_step, -1), kl_per_step=kl_per_step,
                             mean=jnp.zeros((batch, 1, 1, 3)))


def _loss_of_kl(terms, free_nats, batch_mean=lambda x: x):
  return lambda kl_per_step: objective.training_loss(
      terms.replace(kl_per_step=kl_per_step), free_nats, batch_mean)


def test_free_nats_floor_each_steps_kl_and_stop_its_gradient_below(key):
  """0 free nats is the mean negative ELBO; otherwise mean NLL + sum_l max(mean KL_l, floor),
  whose gradient in KL_l is 1/B for steps above the floor and 0 below."""
  terms = _terms(key)
  np.testing.assert_allclose(objective.training_loss(terms), jnp.mean(terms.loss), rtol=1e-6)
  step_means = jnp.mean(terms.kl_per_step, axis=0)
  floor = float(jnp.median(step_means))  # some steps above, some below
  above = step_means > floor
  assert 0 < int(jnp.sum(above)) < step_means.size
  np.testing.assert_allclose(objective.training_loss(terms, floor),
                             jnp.mean(terms.nll) + jnp.sum(jnp.maximum(step_means, floor)),
                             rtol=1e-6)
  grad = jax.grad(_loss_of_kl(terms, floor))(terms.kl_per_step)
  batch = terms.kl_per_step.shape[0]
  np.testing.assert_allclose(grad, jnp.broadcast_to(above / batch, grad.shape), rtol=1e-6)


def test_free_nats_gradients_of_batch_shards_average_to_the_whole_batchs(key):
  """What the data-parallel step relies on: each shard decides the floor on the whole batch's
  KL (batch_mean) and differentiates its own terms; the shards' gradients averaged are the
  whole batch's gradient."""
  terms = _terms(key)
  floor = float(jnp.median(jnp.mean(terms.kl_per_step, axis=0)))
  whole = jax.grad(_loss_of_kl(terms, floor))(terms.kl_per_step)
  whole_mean = jnp.mean(terms.kl_per_step, axis=0)
  shards = [jax.tree.map(lambda x, s=s: x[s], terms) for s in (slice(0, 4), slice(4, 8))]
  per_shard = [jax.grad(_loss_of_kl(shard, floor, lambda _: whole_mean))(shard.kl_per_step)
               for shard in shards]
  np.testing.assert_allclose(jnp.concatenate(per_shard) / 2, whole, rtol=1e-6)
  # Deciding on the shard's own KL instead would not agree in general.
  own = [jax.grad(_loss_of_kl(shard, floor))(shard.kl_per_step) for shard in shards]
  assert not np.allclose(jnp.concatenate(own) / 2, whole)
