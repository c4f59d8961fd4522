"""The paper's optimisation recipe as optax objects.

Learning rate:  mu_s    = max(mu_f + (mu_i - mu_f) (1 - s / n_mu), mu_f)
Pixel sigma:    sigma_s = max(sigma_f + (sigma_i - sigma_f) (1 - (s - b) / n_sigma), sigma_f)
                for s >= b (sigma_i before; b = sigma_anneal_begin, 0 in the paper)

Both are a straight line from the initial to the final value over n steps and constant after,
which is exactly ``optax.linear_schedule``. Values are computed from the step (no state), so a
resumed run continues both anneals where it stopped.
"""

import optax

from gqn_jax.config import OptimConfig


def learning_rate(cfg: OptimConfig) -> optax.Schedule:
  return optax.linear_schedule(cfg.lr_initial, cfg.lr_final, cfg.lr_anneal_steps)


def pixel_sigma(cfg: OptimConfig) -> optax.Schedule:
  return optax.linear_schedule(cfg.sigma_initial, cfg.sigma_final, cfg.sigma_anneal_steps,
                               transition_begin=cfg.sigma_anneal_begin)


def optimizer(cfg: OptimConfig) -> optax.GradientTransformation:
  """Adam on the annealed learning rate, optionally after global-norm clipping."""
  adam = optax.adam(learning_rate(cfg), b1=cfg.adam_b1, b2=cfg.adam_b2, eps=cfg.adam_eps)
  if cfg.grad_clip_norm > 0:
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), adam)
  return adam
