"""The generation network: L ConvLSTM steps on the image/4 grid, under ``jax.lax.scan``.

The maths is the paper's (docs/architecture.md, "Generation network"): at step l the
inference core reads (x_q, v, r, h_g, u) and its state h_e, the posterior q_l and the prior pi_l
are 5x5 convs of h_e and h_g, z_l ~ q_l (training) or pi_l (generation), the generation core
reads (v, r, z_l) and h_g, and the canvas grows by u <- u + ConvTranspose(h_g). The mean image
is a 1x1 conv of u_L.

How it is computed differs, without changing any value (tests/test_generator.py checks it
against a literal step-by-step unroll):

* Every core convolution is split by input. The inputs that change from step to step (the core
  states, z_l, the downsampled canvas) are convolved inside the scan. The inputs that do not
  (v, r, the downsampled query image) are convolved once, for all L steps together, before it:
  a convolution is linear, so their share of each step's gates is fixed in advance. A broadcast
  pose or 1x1 r costs k*k small matmuls (``layers.conv2d_of_constant``) instead of a conv.
  The query image's 4x4/4 downsampling and each step's conv of it compose into one conv over
  the image's 48-channel 4x4 blocks (``layers.strided_then_stacked_conv``).
* Inside the scan, the convolutions are grouped by the input they read rather than by the core
  they feed (``_step_kernels``): h_g^{l-1}, read by the prior and both cores, is convolved once
  with their kernels side by side.
* The canvas u is linear in the h_g of all steps, and everything that reads it is linear too,
  so it is never materialised: the inference core's ``down(u)`` is carried on the grid through
  the composed 1x1 map down o up, and the mean image is ``sum_l obs(up_l(h_g^l))`` evaluated
  after the scan as one matmul over the stacked h_g.

Parameters are declared here (not in per-step submodules) because the pre-scan convolutions
need every step's kernels at once. With ``share_cores=False`` (the paper's default) each step
has its own cores, heads and canvas upsample, stored with a leading axis of size L; with
``share_cores=True`` that axis has size 1.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from gqn_jax import layers
from gqn_jax import objective
from gqn_jax import poses
from gqn_jax.config import ModelConfig
from gqn_jax.poses import POSE_DIM, RAY_DIM

UPSAMPLE = 4  # canvas pixels per grid cell, per side.

# The pre-scan convolutions rebuild their patch matrix and merged kernel in the backward pass
# rather than keep them from the forward pass, with or without remat: the tower r convs' merged
# kernels alone hold 2 cores x L x 5x5x256x512 values (300 MiB in float32 at L = 12) whatever
# the batch, and rebuilding them is a transpose. `make bench-memory` reports XLA's temporaries
# of the step (docs/performance.md, "Memory and remat").
_stacked_conv = jax.checkpoint(layers.conv2d_stacked, static_argnums=(2,))
_strided_then_stacked_conv = jax.checkpoint(layers.strided_then_stacked_conv,
                                            static_argnums=(4, 5))


def _fan_in_init(fan_in: int):
  """Truncated normal with variance 1/fan_in (LeCun), for kernels that are slices of one conv."""
  return nn.initializers.truncated_normal(stddev=math.sqrt(1.0 / fan_in) / 0.87962566103423978)


class StepKernels(nn.Module):
  """Declares one conv's kernels, split by input group, for ``copies`` steps.

  ``inputs`` maps a group name to its channel count; every kernel is [copies, k, k, C, out].
  The initial scale counts all groups' fan-in, as for the single conv over their concatenation.
  """
  inputs: tuple[tuple[str, int], ...]
  out_channels: int
  copies: int
  kernel_size: int

  @nn.compact
  def __call__(self):
    k = self.kernel_size
    init = _fan_in_init(k * k * sum(channels for _, channels in self.inputs))
    params = {name: self.param(name, init, (self.copies, k, k, channels, self.out_channels))
              for name, channels in self.inputs}
    params["bias"] = self.param("bias", nn.initializers.zeros, (self.copies, self.out_channels))
    return params


class Generator(nn.Module):
  """p(x_q | v_q, r) and, given x_q, the posterior terms of the ELBO."""
  config: ModelConfig

  def _declare(self, r_channels: int):
    cfg = self.config
    hidden, latent, canvas = cfg.hidden_channels, cfg.latent_channels, cfg.canvas_channels
    copies = 1 if cfg.share_cores else cfg.steps
    k = cfg.kernel_size

    def kernels(name, inputs, out_channels, kernel_size=k, count=copies):
      return StepKernels(tuple(inputs), out_channels, count, kernel_size, name=name)()

    # Input groups: 'state' holds the inputs that change every step, concatenated in this order.
    rays = [("rays", RAY_DIM)] if cfg.pose_rays else []
    p = {
        "generation_core": kernels(
            "generation_core",
            [("state", hidden + latent), ("pose", POSE_DIM), *rays, ("r", r_channels)],
            4 * hidden),  # state = [h_g, z]
        "inference_core": kernels(
            "inference_core",
            [("state", 3 * hidden), ("image", hidden), ("pose", POSE_DIM), *rays,
             ("r", r_channels)],
            4 * hidden),  # state = [h_e, h_g, down(u)]
        "prior": kernels("prior", [("kernel", hidden)], 2 * latent),
        "posterior": kernels("posterior", [("kernel", hidden)], 2 * latent),
        "canvas_upsample": kernels("canvas_upsample", [("kernel", hidden)], canvas,
                                   kernel_size=UPSAMPLE),
        "image_downsample": kernels("image_downsample", [("kernel", 3)], hidden,
                                    kernel_size=UPSAMPLE, count=1),
        "canvas_downsample": kernels("canvas_downsample", [("kernel", canvas)], hidden,
                                     kernel_size=UPSAMPLE, count=1),
        "observation": kernels("observation", [("kernel", canvas)], 3, kernel_size=1, count=1),
    }
    return p

  @nn.compact
  def __call__(self, r, query_pose, target=None, noise=None):
    """Draws the query view.

    Args:
      r: [B, g, g, R] scene representation, g = 1 or image/4.
      query_pose: [B, 7].
      target: [B, H, W, 3] query image. Given, z_l is drawn from the posterior and the KL
        terms are returned; absent, z_l is drawn from the prior (generation).
      noise: optional [B, L, G, G, Z] standard normal draws for z; drawn from the 'sample'
        rng stream when absent.

    Returns:
      (mean [B, H, W, 3], kl_per_step [B, L] or None).
    """
    cfg = self.config
    dtype = jnp.dtype(cfg.dtype)
    batch, grid, steps = r.shape[0], cfg.grid_size, cfg.steps
    # The one place the platform decides which kernels run (layers.choose says how).
    choice = layers.choose(cfg.conv_backend, dtype, jax.default_backend())
    params = self._declare(r.shape[-1])
    if noise is None:
      noise = jax.random.normal(self.make_rng("sample"),
                                (batch, steps, grid, grid, cfg.latent_channels))
    noise = jnp.moveaxis(noise, 1, 0).astype(dtype)  # [L, B, G, G, Z], scanned over
    r, query_pose = r.astype(dtype), query_pose.astype(dtype)

    gen, inf = params["generation_core"], params["inference_core"]
    # The query camera's ray through each cell (config.pose_rays), read by both cores.
    rays = poses.ray_map(query_pose, grid, cfg.pose_order) if cfg.pose_rays else None
    gen_fixed = self._fixed_gates(gen, query_pose, rays, r, grid, choice)
    if target is None:
      hidden_states = self._scan_prior(params, gen_fixed, noise, choice)
      kl_per_step = None
    else:
      inf_fixed = (self._fixed_gates(inf, query_pose, rays, r, grid, choice)
                   + self._image_gates(params["image_downsample"], inf["image"],
                                       target.astype(dtype), choice))
      hidden_states, kl_per_step = self._scan_posterior(params, gen_fixed, inf_fixed, noise,
                                                        choice)
      kl_per_step = kl_per_step.T  # [B, L]
    return self._render(params, hidden_states), kl_per_step

  def _fixed_gates(self, core, pose, rays, r, grid, choice):
    """Gates from the inputs that are the same at every step: [copies, B, G, G, 4H]."""
    gates = layers.conv2d_of_constant(pose, core["pose"], grid)
    if rays is not None:
      gates += _stacked_conv(rays, core["rays"], choice)
    if r.shape[1] == 1:  # pyramid / pool: r is a 1x1 map, broadcast over the grid.
      gates += layers.conv2d_of_constant(r[:, 0, 0, :], core["r"], grid)
    else:
      gates += _stacked_conv(r, core["r"], choice)
    return gates + core["bias"][:, None, None, None, :].astype(gates.dtype)

  def _image_gates(self, down, kernels, image, choice):
    """The query image's share of the inference core's gates: [copies, B, G, G, 4H]."""
    down_kernel, down_bias = down["kernel"][0], down["bias"][0]
    if UPSAMPLE * UPSAMPLE * image.shape[-1] < self.config.hidden_channels:
      return _strided_then_stacked_conv(image, down_kernel, down_bias, kernels,
                                        self.config.grid_size, choice)
    image_grid = layers.space_to_depth_conv(image, down_kernel, down_bias, choice)  # [B,G,G,H]
    return _stacked_conv(image_grid, kernels, choice)

  def _scan(self, step, carry, per_step, noise):
    """Runs ``step(carry, step_params, eps)`` L times.

    ``per_step`` holds parameters and fixed gates with a leading axis of copies: scanned over
    with unshared cores, closed over (axis dropped) with shared ones. ``noise`` is always
    scanned over.
    """
    cfg = self.config
    # Cast once, outside the loop, so that float32 parameters do not promote a bfloat16 carry.
    per_step = jax.tree.map(lambda x: x.astype(cfg.dtype), per_step)
    shared = jax.tree.map(lambda x: x[0], per_step) if cfg.share_cores else None
    scanned = None if cfg.share_cores else per_step

    def body(carry, inputs):
      step_inputs = shared if cfg.share_cores else inputs[0]
      return step(carry, step_inputs, inputs[1])

    if cfg.remat:
      body = jax.checkpoint(body)
    return jax.lax.scan(body, carry, (scanned, noise), unroll=cfg.scan_unroll)

  def _step_kernels(self, p, inference: bool):
    """Convolution kernels grouped by the input they read: [..., k, k, C, O] each, for one step
    or (leading axis) all of them.

    The core kernels are declared by output (one per core, over its concatenated inputs); a
    convolution is linear in its input channels, so it splits into one convolution per input.
    Grouped by input, h_g^{l-1} (read by the prior, the inference core and the generation core)
    is convolved once with their kernels side by side, and each input's patches are built
    once per step. Without ``inference`` (generation), the inference core's kernels are left
    out.
    """
    hidden, latent = self.config.hidden_channels, self.config.latent_channels
    gen = p["gen_state"]   # input channels [h_g, z]
    inf = p["inf_state"] if inference else None  # input channels [h_e, h_g, down(u)]
    # h_g -> [prior (2Z) | inference gates (4H), with inference | generation gates (4H)]
    from_h_g = [p["prior"]["kernel"]]
    from_h_g += [inf[..., hidden:2 * hidden, :]] if inference else []
    from_h_g += [gen[..., :hidden, :]]
    kernels = {"h_g": jnp.concatenate(from_h_g, axis=-1), "z": gen[..., hidden:hidden + latent, :]}
    if inference:  # [h_e, down(u)] -> inference gates
      kernels["h_e_canvas"] = jnp.concatenate([inf[..., :hidden, :], inf[..., 2 * hidden:, :]],
                                              axis=-2)
    return kernels

  def _with_step_kernels(self, per_step, inference: bool):
    """``per_step`` with every step's regrouped kernels, made once before the scan; with remat
    they are made inside each (recomputed) step instead, since the copy made before the scan
    is kept for the backward pass like an activation, and remat is asked for to save memory."""
    if self.config.remat:
      return per_step
    return per_step | {"kernels": self._step_kernels(per_step, inference)}

  def _from_h_g(self, h_g, kernel, prior_bias, choice):
    """The prior's parameters and h_g's share of the inference gates (None in generation) and
    of the generation gates."""
    latent, gates = 2 * self.config.latent_channels, 4 * self.config.hidden_channels
    out = layers.conv2d(h_g, kernel, choice)
    prior = out[..., :latent] + prior_bias
    inference = out[..., latent:-gates] if out.shape[-1] > latent + gates else None
    return prior, inference, out[..., -gates:]

  def _scan_prior(self, params, gen_fixed, noise, choice):
    per_step = self._with_step_kernels(
        {"gen_state": params["generation_core"]["state"], "gen_fixed": gen_fixed,
         "prior": params["prior"]}, inference=False)

    def step(carry, p, eps):
      h_g, c_g = carry
      kernels = p["kernels"] if "kernels" in p else self._step_kernels(p, inference=False)
      prior, _, gen_from_h_g = self._from_h_g(h_g, kernels["h_g"], p["prior"]["bias"], choice)
      mean, log_scale = layers.gaussian_params(prior)
      z = mean + jnp.exp(log_scale) * eps
      gates = gen_from_h_g + layers.conv2d(z, kernels["z"], choice)
      h_g, c_g = layers.lstm_update(gates + p["gen_fixed"], c_g)
      return (h_g, c_g), h_g

    state = self._zeros_state(gen_fixed)
    _, hidden_states = self._scan(step, (state, state), per_step, noise)
    return hidden_states

  def _scan_posterior(self, params, gen_fixed, inf_fixed, noise, choice):
    composed_kernel, composed_bias = self._canvas_down_maps(params)
    per_step = self._with_step_kernels(
        {"gen_state": params["generation_core"]["state"], "gen_fixed": gen_fixed,
         "inf_state": params["inference_core"]["state"], "inf_fixed": inf_fixed,
         "prior": params["prior"], "posterior": params["posterior"],
         "canvas_kernel": composed_kernel, "canvas_bias": composed_bias}, inference=True)

    def step(carry, p, eps):
      h_g, c_g, h_e, c_e, canvas_grid = carry
      kernels = p["kernels"] if "kernels" in p else self._step_kernels(p, inference=True)
      prior, inf_from_h_g, gen_from_h_g = self._from_h_g(h_g, kernels["h_g"], p["prior"]["bias"],
                                                         choice)
      gates = layers.conv2d(jnp.concatenate([h_e, canvas_grid], -1), kernels["h_e_canvas"],
                            choice)
      h_e, c_e = layers.lstm_update(gates + inf_from_h_g + p["inf_fixed"], c_e)
      posterior = layers.conv2d(h_e, p["posterior"]["kernel"], choice) + p["posterior"]["bias"]
      mean_q, log_scale_q = layers.gaussian_params(posterior)
      mean_p, log_scale_p = layers.gaussian_params(prior)
      kl = objective.gaussian_kl(mean_q, log_scale_q, mean_p, log_scale_p).sum(axis=(1, 2, 3))
      z = mean_q + jnp.exp(log_scale_q) * eps
      gates = gen_from_h_g + layers.conv2d(z, kernels["z"], choice)
      h_g, c_g = layers.lstm_update(gates + p["gen_fixed"], c_g)
      # down(u) after this step's canvas update, through the composed 1x1 map down o up.
      canvas_grid = (canvas_grid + layers.matmul(h_g, p["canvas_kernel"], choice)
                     + p["canvas_bias"])
      return (h_g, c_g, h_e, c_e, canvas_grid), (h_g, kl)

    state = self._zeros_state(gen_fixed)
    down = params["canvas_downsample"]
    canvas_grid = jnp.broadcast_to(down["bias"][0].astype(state.dtype), state.shape)  # down(0)
    _, (hidden_states, kl) = self._scan(step, (state, state, state, state, canvas_grid), per_step,
                                        noise)
    return hidden_states, kl

  def _zeros_state(self, fixed_gates):
    shape = fixed_gates.shape[1:-1] + (self.config.hidden_channels,)  # [B, G, G, H]
    return jnp.zeros(shape, fixed_gates.dtype)

  def _canvas_down_maps(self, params):
    """down(up_l(h)) as a 1x1 map per step: kernels [copies, H, H], biases [copies, H].

    Both are s x s, stride-s (de)convolutions, so each grid cell's hidden vector goes to its own
    s x s canvas block and back: the composition is a per-cell matrix.
    """
    up, down = params["canvas_upsample"], params["canvas_downsample"]["kernel"][0]
    kernel = jnp.einsum("lpqhu,pquo->lho", up["kernel"], down)
    bias = jnp.einsum("lu,pquo->lo", up["bias"], down)
    return kernel, bias

  def _render(self, params, hidden_states):
    """mean = obs(u_L) with u_L = sum_l up_l(h_g^l), without building the canvas.

    hidden_states [L, B, G, G, H] -> [B, 4G, 4G, 3].
    """
    up, obs = params["canvas_upsample"], params["observation"]
    obs_kernel, obs_bias = obs["kernel"][0, 0, 0], obs["bias"][0]       # [U, 3], [3]
    kernel = jnp.einsum("lpqhu,uc->lpqhc", up["kernel"], obs_kernel)   # [copies, s, s, H, 3]
    bias = jnp.sum(up["bias"], axis=0) @ obs_kernel
    if self.config.share_cores:  # one upsample for every step: sum the states first.
      hidden_states = jnp.sum(hidden_states, axis=0, keepdims=True)
      bias = self.config.steps * bias
    steps, batch, grid = hidden_states.shape[:3]
    # Accumulated in float32: the image's rounding to bfloat16 would be one shared error per
    # pixel value, which the NLL's gradient sums over every pixel.
    blocks = jnp.einsum("lbijh,lpqhc->bipjqc", hidden_states, kernel.astype(hidden_states.dtype),
                        preferred_element_type=jnp.float32)
    image = blocks.reshape(batch, grid * UPSAMPLE, grid * UPSAMPLE, 3)
    return image + (bias + obs_bias)
