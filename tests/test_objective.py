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
