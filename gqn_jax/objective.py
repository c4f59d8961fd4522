"""The evidence lower bound's two terms, per example, and the structure that carries them."""

import math

import flax.struct
import jax
import jax.numpy as jnp

HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)


@flax.struct.dataclass
class ElboTerms:
  """Per-example outputs of a training pass; the trainer reduces them over the batch."""
  nll: jax.Array            # [B] -log N(x_q | mean, sigma^2), summed over pixels, in nats.
  kl: jax.Array             # [B] sum over steps of KL(q_l || pi_l), in nats.
  kl_per_step: jax.Array    # [B, L]
  mean: jax.Array           # [B, H, W, 3] the observation mean (the reconstruction).

  @property
  def loss(self):           # [B] negative ELBO
    return self.nll + self.kl


def training_loss(terms: ElboTerms, free_nats_per_step: float = 0.0, batch_mean=lambda x: x):
  """The scalar the optimizer minimises: the batch's mean negative ELBO, where each step's KL
  (averaged over the batch) counts at least ``free_nats_per_step`` nats ("free bits", Kingma et
  al. 2016). Below that a step's KL has no gradient, so the posterior may carry that much
  through every step without cost and no step collapses to the prior. 0 is the ELBO itself.

  ``batch_mean`` turns this device's per-step KL into the whole batch's (a pmean over the data
  axis), so that which steps are under the floor is decided on the global batch and the
  gradients averaged over devices are those of the one-device loss."""
  if not free_nats_per_step:
    return jnp.mean(terms.loss)
  kl_per_step = jnp.mean(terms.kl_per_step, axis=0)
  above = jax.lax.stop_gradient(batch_mean(kl_per_step) > free_nats_per_step)
  return jnp.mean(terms.nll) + jnp.sum(jnp.where(above, kl_per_step, free_nats_per_step))


def gaussian_nll(target, mean, sigma):
  """-log N(target | mean, sigma^2) summed over all but the batch axis; [B, ...] -> [B]."""
  target, mean = target.astype(jnp.float32), mean.astype(jnp.float32)
  per_value = HALF_LOG_TWO_PI + jnp.log(sigma) + 0.5 * jnp.square((target - mean) / sigma)
  return jnp.sum(per_value.reshape(per_value.shape[0], -1), axis=-1)


def gaussian_kl(mean_q, log_scale_q, mean_p, log_scale_p):
  """KL(N(mean_q, scale_q^2) || N(mean_p, scale_p^2)) elementwise, for diagonal Gaussians."""
  mean_q, log_scale_q = mean_q.astype(jnp.float32), log_scale_q.astype(jnp.float32)
  mean_p, log_scale_p = mean_p.astype(jnp.float32), log_scale_p.astype(jnp.float32)
  variance_ratio = jnp.exp(2.0 * (log_scale_q - log_scale_p))
  squared_distance = jnp.square((mean_q - mean_p) * jnp.exp(-log_scale_p))
  return log_scale_p - log_scale_q + 0.5 * (variance_ratio + squared_distance - 1.0)


def nll_floor_per_value(sigma):
  """Smallest possible NLL of one sub-pixel, reached when the mean equals the target."""
  return HALF_LOG_TWO_PI + math.log(sigma)
