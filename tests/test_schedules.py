"""The optax schedules equal the spec's formulas at the spec's checkpoints."""

import numpy as np
import pytest

from gqn_jax import schedules
from gqn_jax.config import OptimConfig

STEPS = [0, 100_000, 200_000, 800_000, 1_600_000, 2_000_000]


def spec_learning_rate(s):
  mu_i, mu_f, n = 5e-4, 5e-5, 1.6e6
  return max(mu_f + (mu_i - mu_f) * (1 - s / n), mu_f)


def spec_sigma(s):
  sigma_i, sigma_f, n = 2.0, 0.7, 2e5
  return max(sigma_f + (sigma_i - sigma_f) * (1 - s / n), sigma_f)


@pytest.mark.parametrize("step", STEPS)
def test_learning_rate(step):
  np.testing.assert_allclose(schedules.learning_rate(OptimConfig())(step),
                             spec_learning_rate(step), rtol=1e-6)


@pytest.mark.parametrize("step", STEPS)
def test_pixel_sigma(step):
  np.testing.assert_allclose(schedules.pixel_sigma(OptimConfig())(step), spec_sigma(step),
                             rtol=1e-6)


def test_annealing_starts_at_the_initial_values():
  """A known bug elsewhere: the anneal starting at the final value."""
  assert float(schedules.learning_rate(OptimConfig())(0)) == pytest.approx(5e-4)
  assert float(schedules.pixel_sigma(OptimConfig())(0)) == pytest.approx(2.0)
  assert float(schedules.pixel_sigma(OptimConfig())(150_000)) < 2.0


@pytest.mark.parametrize("step", [0, 5_000, 10_000, 11_000, 12_000, 20_000])
def test_delayed_sigma_anneal(step):
  """A second anneal begun at step b: sigma_i until b, then the same straight line shifted."""
  cfg = OptimConfig(sigma_initial=0.7, sigma_final=0.1, sigma_anneal_steps=2_000,
                    sigma_anneal_begin=10_000)
  expected = 0.7 if step < 10_000 else max(0.1 + 0.6 * (1 - (step - 10_000) / 2_000), 0.1)
  np.testing.assert_allclose(schedules.pixel_sigma(cfg)(step), expected, rtol=1e-6)


def test_baseline_schedule_agrees_with_optax_on_a_delayed_anneal():
  from experiments.baselines.torch_gqn import schedules as baseline  # pylint: disable=g-import-not-at-top
  cfg = OptimConfig(sigma_initial=0.7, sigma_final=0.1, sigma_anneal_steps=2_000,
                    sigma_anneal_begin=10_000)
  for step in range(0, 14_000, 250):
    assert baseline.pixel_sigma(step, cfg) == pytest.approx(
        float(schedules.pixel_sigma(cfg)(step)), rel=1e-6)
