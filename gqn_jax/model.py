"""The Generative Query Network: a representation network and a generator, trained jointly.

Three modes, all pure functions of (params, inputs, rng):

* ``GQN.__call__`` (training): z drawn from the posterior; returns the ELBO's per-example terms.
* ``GQN.reconstruct``: the same pass, returning only the observation mean.
* ``GQN.generate``: z drawn from the prior, for any query pose; no target image needed.

Latent noise comes from the ``'sample'`` rng stream, or is passed in as ``noise``
[B, L, G, G, Z] (the trainer does, so that each example's noise depends on the example, not on
how the batch is split over devices).
"""

import flax.linen as nn
import jax.numpy as jnp

from gqn_jax import objective
from gqn_jax.config import ModelConfig
from gqn_jax.generator import Generator
from gqn_jax.representation import Representation


class GQN(nn.Module):
  config: ModelConfig

  def setup(self):
    self.representation = Representation(self.config.representation, self.config.r_channels,
                                         self.config.remat, jnp.dtype(self.config.dtype))
    self.generator = Generator(self.config)

  def represent(self, context_images, context_poses, context_mask=None):
    """[B, M, H, W, 3], [B, M, 7], [B, M] -> r [B, g, g, R]."""
    return self.representation(context_images, context_poses, context_mask)

  def __call__(self, context_images, context_poses, query_pose, query_image, sigma,
               context_mask=None, noise=None) -> objective.ElboTerms:
    """Training pass: the negative ELBO's terms for each scene of the batch."""
    r = self.represent(context_images, context_poses, context_mask)
    mean, kl_per_step = self.generator(r, query_pose, query_image, noise)
    return objective.ElboTerms(
        nll=objective.gaussian_nll(query_image, mean, sigma),
        kl=kl_per_step.sum(axis=-1),
        kl_per_step=kl_per_step,
        mean=mean)

  def reconstruct(self, context_images, context_poses, query_pose, query_image,
                  context_mask=None, noise=None):
    """Observation mean with z from the posterior: [B, H, W, 3]."""
    r = self.represent(context_images, context_poses, context_mask)
    return self.generator(r, query_pose, query_image, noise)[0]

  def generate(self, context_images, context_poses, query_pose, context_mask=None, noise=None):
    """Observation mean with z from the prior, for a query pose alone: [B, H, W, 3]."""
    r = self.represent(context_images, context_poses, context_mask)
    return self.generator(r, query_pose, None, noise)[0]
