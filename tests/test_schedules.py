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
