"""The paper's annealing schedules, as plain functions of the step.

The formulas and constants: docs/architecture.md, "Training recipe".
"""

from gqn_jax.config import OptimConfig


def _linear_anneal(step: int, initial: float, final: float, steps: int) -> float:
  """max(final + (initial - final)(1 - step/steps), final): linear, then flat at ``final``.

  Written as the paper writes it so that a reader can check it against the formula; it assumes
  initial > final, as both of the paper's schedules have.
  """
  return max(final + (initial - final) * (1.0 - step / steps), final)


def learning_rate(step: int, optim: OptimConfig = OptimConfig()) -> float:
  """mu_s: 5e-4 -> 5e-5 over 1.6e6 steps with the paper's settings."""
  return _linear_anneal(step, optim.lr_initial, optim.lr_final, optim.lr_anneal_steps)


def pixel_sigma(step: int, optim: OptimConfig = OptimConfig()) -> float:
  """sigma_s: 2.0 -> 0.7 over 2e5 steps with the paper's settings (from sigma_anneal_begin)."""
  return _linear_anneal(max(step - optim.sigma_anneal_begin, 0), optim.sigma_initial,
                        optim.sigma_final, optim.sigma_anneal_steps)
