"""The generation network, written the direct way: a Python loop over the L steps, each ConvLSTM
a convolution over its concatenated inputs, and a real 4x-upsampled canvas.

This is the literal reading of the paper (docs/architecture.md, "Generation network");
gqn_jax/generator.py computes the same values in a rearranged form. Per step l (0-based), from
zero states and a zero canvas u:

  h_e, c_e = inference_core_l([h_e, h_g, down_u(u), down_x(x_q), v, r])   (training only)
  prior pi_l = head(h_g), posterior q_l = head(h_e)       (h_g from before this step's update)
  z_l = mean + exp(log_scale) * eps_l, from q_l (training) or pi_l (generation)
  h_g, c_g = generation_core_l([h_g, z_l, v, r])
  u = u + upsample_l(h_g)

and the observation mean is a 1x1 conv of u_L.
"""

import torch
from torch import nn

from gqn_jax.config import ModelConfig
from experiments.baselines.torch_gqn.objective import gaussian_kl
from experiments.baselines.torch_gqn.representation import POSE_DIM

UPSAMPLE = 4  # canvas pixels per grid cell, per side.


class ConvLSTMCell(nn.Module):
  """One ConvLSTM: a single 'same' conv over [h, inputs] gives the four gates.

  Gate order along channels: input, forget, output, candidate.
  """

  def __init__(self, input_channels: int, hidden_channels: int, kernel_size: int):
    super().__init__()
    self.conv = nn.Conv2d(hidden_channels + input_channels, 4 * hidden_channels, kernel_size,
                          padding=kernel_size // 2)

  def forward(self, inputs, state):
    hidden, cell = state
    gates = self.conv(torch.cat([hidden, inputs], dim=1))
    input_gate, forget_gate, output_gate, candidate = gates.chunk(4, dim=1)
    cell = torch.sigmoid(forget_gate) * cell + torch.sigmoid(input_gate) * torch.tanh(candidate)
    hidden = torch.sigmoid(output_gate) * torch.tanh(cell)
    return hidden, cell


class GaussianHead(nn.Module):
  """A 'same' conv to the mean and log-scale of a diagonal Gaussian over z."""

  def __init__(self, hidden_channels: int, latent_channels: int, kernel_size: int):
    super().__init__()
    self.conv = nn.Conv2d(hidden_channels, 2 * latent_channels, kernel_size,
                          padding=kernel_size // 2)

  def forward(self, hidden):  # -> (mean, log_scale), each [B, Z, G, G]
    return self.conv(hidden).chunk(2, dim=1)


class Generator(nn.Module):
  """p(x_q | v_q, r) and, given x_q, the KL terms of the ELBO."""

  def __init__(self, config: ModelConfig):
    super().__init__()
    self.config = config
    hidden, latent, canvas = config.hidden_channels, config.latent_channels, config.canvas_channels
    r_channels = config.generator_r_channels
    k = config.kernel_size
    # Unshared (the paper's default): one of each per step. Shared: a single one, used L times.
    copies = 1 if config.share_cores else config.steps
    # Inference core inputs besides h_e: h_g, down_u(u), down_x(x_q), v, r.
    self.inference_cores = nn.ModuleList(
        ConvLSTMCell(3 * hidden + POSE_DIM + r_channels, hidden, k) for _ in range(copies))
    # Generation core inputs besides h_g: z, v, r.
    self.generation_cores = nn.ModuleList(
        ConvLSTMCell(latent + POSE_DIM + r_channels, hidden, k) for _ in range(copies))
    self.priors = nn.ModuleList(GaussianHead(hidden, latent, k) for _ in range(copies))
    self.posteriors = nn.ModuleList(GaussianHead(hidden, latent, k) for _ in range(copies))
    self.canvas_upsamples = nn.ModuleList(
        nn.ConvTranspose2d(hidden, canvas, UPSAMPLE, stride=UPSAMPLE) for _ in range(copies))
    # Shared over steps in both settings.
    self.image_downsample = nn.Conv2d(3, hidden, UPSAMPLE, stride=UPSAMPLE)
    self.canvas_downsample = nn.Conv2d(canvas, hidden, UPSAMPLE, stride=UPSAMPLE)
    self.observation = nn.Conv2d(canvas, 3, 1)

  def forward(self, r, query_pose, query_image=None, noise=None):
    """Draws the query view.

    Args:
      r: [B, R, g, g] scene representation, g = 1 or image/4.
      query_pose: [B, 7].
      query_image: [B, 3, H, W]. Given, z_l comes from the posterior and the KL terms are
        returned; absent, z_l comes from the prior (generation) and no inference core runs.
      noise: optional [B, L, Z, G, G] standard normal draws for z; fresh ones when absent.

    Returns:
      (mean [B, 3, H, W], kl_per_step [B, L] or None).
    """
    cfg = self.config
    batch, grid, hidden_channels = query_pose.shape[0], cfg.grid_size, cfg.hidden_channels
    size = grid * UPSAMPLE
    pose_map = query_pose[:, :, None, None].expand(-1, -1, grid, grid)
    r_map = r.expand(-1, -1, grid, grid) if r.shape[-1] == 1 else r
    training = query_image is not None
    if training:
      image_map = self.image_downsample(query_image)            # [B, H, G, G]

    zeros = query_pose.new_zeros(batch, hidden_channels, grid, grid)
    h_g, c_g, h_e, c_e = zeros, zeros, zeros, zeros
    canvas = query_pose.new_zeros(batch, cfg.canvas_channels, size, size)
    kl_per_step = []
    for step in range(cfg.steps):
      i = 0 if cfg.share_cores else step
      prior_mean, prior_log_scale = self.priors[i](h_g)
      eps = noise[:, step] if noise is not None else torch.randn_like(prior_mean)
      if training:
        inference_inputs = torch.cat(
            [h_g, self.canvas_downsample(canvas), image_map, pose_map, r_map], dim=1)
        h_e, c_e = self.inference_cores[i](inference_inputs, (h_e, c_e))
        posterior_mean, posterior_log_scale = self.posteriors[i](h_e)
        kl = gaussian_kl(posterior_mean, posterior_log_scale, prior_mean, prior_log_scale)
        kl_per_step.append(kl.sum(dim=(1, 2, 3)))
        z = posterior_mean + torch.exp(posterior_log_scale) * eps
      else:
        z = prior_mean + torch.exp(prior_log_scale) * eps
      h_g, c_g = self.generation_cores[i](torch.cat([z, pose_map, r_map], dim=1), (h_g, c_g))
      canvas = canvas + self.canvas_upsamples[i](h_g)
    mean = self.observation(canvas)
    return mean, (torch.stack(kl_per_step, dim=1) if training else None)
