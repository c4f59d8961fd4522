"""The negative ELBO's two terms, per scene, for the PyTorch baseline."""

import math
from typing import NamedTuple

import torch

HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)


class ElboTerms(NamedTuple):
  """Per-scene outputs of a training pass (the same fields as gqn_jax.objective.ElboTerms)."""
  nll: torch.Tensor          # [B] -log N(x_q | mean, sigma^2) summed over pixels, nats.
  kl: torch.Tensor           # [B] sum over the L steps of KL(q_l || pi_l), nats.
  kl_per_step: torch.Tensor  # [B, L]
  mean: torch.Tensor         # [B, 3, H, W] observation mean.

  @property
  def loss(self) -> torch.Tensor:  # [B] negative ELBO
    return self.nll + self.kl


def gaussian_nll(target: torch.Tensor, mean: torch.Tensor, sigma) -> torch.Tensor:
  """-log N(target | mean, sigma^2) summed over all but the batch axis: [B, ...] -> [B].

  sigma: a float or a 0-d tensor (the trainer passes a tensor, so that a compiled loss is not
  specialised, and recompiled, for every value of the annealed sigma).
  """
  sigma = torch.as_tensor(sigma, dtype=mean.dtype, device=mean.device)
  per_value = HALF_LOG_TWO_PI + torch.log(sigma) + (target - mean) ** 2 / (2.0 * sigma ** 2)
  return per_value.flatten(1).sum(1)


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
  return x.to(torch.promote_types(x.dtype, torch.float32))


def gaussian_kl(mean_q, log_scale_q, mean_p, log_scale_p) -> torch.Tensor:
  """KL(N(mean_q, s_q^2) || N(mean_p, s_p^2)) elementwise, in the textbook closed form.

  Computed in float32 (or float64) even from bfloat16 heads, as gqn_jax does.
  """
  mean_q, log_scale_q, mean_p, log_scale_p = map(
      at_least_float32, (mean_q, log_scale_q, mean_p, log_scale_p))
  var_q = torch.exp(2.0 * log_scale_q)
  var_p = torch.exp(2.0 * log_scale_p)
  return log_scale_p - log_scale_q + (var_q + (mean_q - mean_p) ** 2) / (2.0 * var_p) - 0.5


def training_loss(terms: ElboTerms, free_nats_per_step: float = 0.0) -> torch.Tensor:
  """The minimised scalar (gqn_jax.objective.training_loss): the mean negative ELBO, each
  step's batch-mean KL counted at least ``free_nats_per_step`` and without gradient below."""
  if not free_nats_per_step:
    return terms.loss.mean()
  kl_per_step = terms.kl_per_step.mean(dim=0)
  floored = torch.where(kl_per_step.detach() > free_nats_per_step, kl_per_step,
                        torch.full_like(kl_per_step, free_nats_per_step))
  return terms.nll.mean() + floored.sum()
