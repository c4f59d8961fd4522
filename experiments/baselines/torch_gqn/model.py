"""The Generative Query Network in PyTorch: representation network + generator.

Mirrors gqn_jax.model.GQN's three modes with channels-first tensors:
``forward`` (training: ELBO terms per scene), ``reconstruct`` and ``generate``.

``config.dtype='bfloat16'`` runs the networks under ``torch.autocast``: PyTorch's idiom for
bfloat16 compute, not gqn_jax's exact recipe. Autocast makes the convolutions bfloat16, while
the LSTM states, canvas and z stay float32 through type promotion (gqn_jax keeps them in
bfloat16). Parameters, the ELBO terms and the returned images are float32 in both modes.
"""

import contextlib

import torch
from torch import nn

from gqn_jax.config import ModelConfig
from experiments.baselines.torch_gqn import objective
from experiments.baselines.torch_gqn.generator import Generator
from experiments.baselines.torch_gqn.representation import Representation, ViewAttention


class GQN(nn.Module):

  def __init__(self, config: ModelConfig):
    super().__init__()
    if config.dtype not in ("float32", "bfloat16"):
      raise ValueError(f"the PyTorch baseline runs in float32 or bfloat16; got dtype "
                       f"{config.dtype!r}")
    if config.pose_rays:  # it would be a different model, timed or compared as the same one.
      raise ValueError("the PyTorch baseline is the paper's model, with the pose broadcast only; "
                       "config.model.pose_rays=True has no counterpart there")
    self.config = config
    self.representation = Representation(config.representation, config.r_channels,
                                         config.image_size, pixels=config.r_pixels)
    self.generator = Generator(config)
    if config.view_attention:
      self.attention = ViewAttention(r_channels=config.generator_r_channels,
                                     cells=config.attention_over == "cells")

  def _compute_dtype(self, like: torch.Tensor):
    """Autocast to bfloat16 in bfloat16 mode; nothing in float32 mode."""
    if self.config.dtype == "float32":
      return contextlib.nullcontext()
    return torch.autocast(like.device.type, dtype=torch.bfloat16)

  def represent(self, context_images, context_poses, context_mask=None):
    """[B, M, 3, H, W], [B, M, 7], [B, M] -> r [B, R, g, g]; with view_attention the tuple
    (encodings [B, M, R, g, g], poses, mask) that ``_draw`` weights for each query."""
    with self._compute_dtype(context_images):
      if not self.config.view_attention:
        return self.representation(context_images, context_poses, context_mask)
      if context_mask is None:
        context_mask = torch.ones(context_images.shape[:2], dtype=torch.bool,
                                  device=context_images.device)
      encoded = self.representation(context_images, context_poses, context_mask, keep_views=True)
      return encoded, context_poses, context_mask

  def _draw(self, r, query_pose, query_image, noise):
    with self._compute_dtype(query_pose):
      if self.config.view_attention:
        r = self.attention(*r, query_pose)
      mean, kl_per_step = self.generator(r, query_pose, query_image, noise)
    upcast = objective.at_least_float32
    return upcast(mean), None if kl_per_step is None else upcast(kl_per_step)

  def forward(self, context_images, context_poses, query_pose, query_image, sigma: float,
              context_mask=None, noise=None) -> objective.ElboTerms:
    """Training pass: the negative ELBO's terms for each scene. noise: [B, L, Z, G, G]."""
    r = self.represent(context_images, context_poses, context_mask)
    mean, kl_per_step = self._draw(r, query_pose, query_image, noise)
    return objective.ElboTerms(
        nll=objective.gaussian_nll(query_image, mean, sigma),
        kl=kl_per_step.sum(dim=1),
        kl_per_step=kl_per_step,
        mean=mean)

  def reconstruct(self, context_images, context_poses, query_pose, query_image,
                  context_mask=None, noise=None) -> torch.Tensor:
    """Observation mean with z from the posterior: [B, 3, H, W]."""
    r = self.represent(context_images, context_poses, context_mask)
    return self._draw(r, query_pose, query_image, noise)[0]

  def generate(self, context_images, context_poses, query_pose, context_mask=None,
               noise=None) -> torch.Tensor:
    """Observation mean with z from the prior, for a query pose alone: [B, 3, H, W]."""
    r = self.represent(context_images, context_poses, context_mask)
    return self._draw(r, query_pose, None, noise)[0]
