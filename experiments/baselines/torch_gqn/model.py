"""The Generative Query Network in PyTorch: representation network + generator.

Mirrors gqn_jax.model.GQN's three modes with channels-first tensors:
``forward`` (training: ELBO terms per scene), ``reconstruct`` and ``generate``.
"""

import torch
from torch import nn

from gqn_jax.config import ModelConfig
from experiments.baselines.torch_gqn import objective
from experiments.baselines.torch_gqn.generator import Generator
from experiments.baselines.torch_gqn.representation import Representation


class GQN(nn.Module):

  def __init__(self, config: ModelConfig):
    super().__init__()
    if config.dtype != "float32":
      raise ValueError(f"the PyTorch baseline runs in float32 only; got dtype {config.dtype!r}")
    self.config = config
    self.representation = Representation(config.representation, config.r_channels,
                                         config.image_size)
    self.generator = Generator(config)

  def represent(self, context_images, context_poses, context_mask=None):
    """[B, M, 3, H, W], [B, M, 7], [B, M] -> r [B, R, g, g]."""
    return self.representation(context_images, context_poses, context_mask)

  def forward(self, context_images, context_poses, query_pose, query_image, sigma: float,
              context_mask=None, noise=None) -> objective.ElboTerms:
    """Training pass: the negative ELBO's terms for each scene. noise: [B, L, Z, G, G]."""
    r = self.represent(context_images, context_poses, context_mask)
    mean, kl_per_step = self.generator(r, query_pose, query_image, noise)
    return objective.ElboTerms(
        nll=objective.gaussian_nll(query_image, mean, sigma),
        kl=kl_per_step.sum(dim=1),
        kl_per_step=kl_per_step,
        mean=mean)

  def reconstruct(self, context_images, context_poses, query_pose, query_image,
                  context_mask=None, noise=None) -> torch.Tensor:
    """Observation mean with z from the posterior: [B, 3, H, W]."""
    r = self.represent(context_images, context_poses, context_mask)
    return self.generator(r, query_pose, query_image, noise)[0]

  def generate(self, context_images, context_poses, query_pose, context_mask=None,
               noise=None) -> torch.Tensor:
    """Observation mean with z from the prior, for a query pose alone: [B, 3, H, W]."""
    r = self.represent(context_images, context_poses, context_mask)
    return self.generator(r, query_pose, None, noise)[0]
