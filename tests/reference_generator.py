"""The generator written literally from the paper, step by step, for equivalence tests.

A Python loop over the L steps, each core a convolution over the concatenation of all its
inputs, a real full-size canvas. It reads the same parameter tree as gqn_jax.generator.Generator,
so the two must agree to float tolerance.
"""

import jax
import jax.numpy as jnp
from jax import lax

from gqn_jax import layers
from gqn_jax import objective
from gqn_jax import poses


_PLAIN = layers.KernelChoice("xla", False)  # XLA's own ops: the reference uses no kernel of ours.

def _conv(x, kernel, bias):
  out = lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return out + bias


def _core_kernel(core, names):
  """The single kernel of a core's conv over concatenated inputs, in concatenation order."""
  return jnp.concatenate([core[name] for name in names], axis=-2)


def _broadcast(x, grid):
  """[B, C] or [B, 1, 1, C] or [B, G, G, C] -> [B, G, G, C]."""
  x = x.reshape(x.shape[0], 1, 1, -1) if x.ndim == 2 else x
  return jnp.broadcast_to(x, (x.shape[0], grid, grid, x.shape[-1]))


def generate(params, config, r, query_pose, target, noise):
  """Returns (mean [B, H, W, 3], kl_per_step [B, L] or None) like Generator.__call__."""
  grid, steps, hidden = config.grid_size, config.steps, config.hidden_channels
  batch = r.shape[0]
  pick = (lambda tree, l: jax.tree.map(lambda x: x[0], tree)) if config.share_cores else (
      lambda tree, l: jax.tree.map(lambda x: x[l], tree))
  v, r_grid = _broadcast(query_pose, grid), _broadcast(r, grid)
  pose_inputs = ["pose"]
  if config.pose_rays:  # each cell's viewing ray joins the broadcast pose.
    v = jnp.concatenate([v, poses.ray_map(query_pose, grid, config.pose_order)], axis=-1)
    pose_inputs = ["pose", "rays"]
  zeros = jnp.zeros((batch, grid, grid, hidden))
  h_g = c_g = h_e = c_e = zeros
  canvas = jnp.zeros((batch, 4 * grid, 4 * grid, config.canvas_channels))
  down_u, down_x, obs = (params["canvas_downsample"], params["image_downsample"],
                         params["observation"])
  if target is not None:
    x_grid = layers.space_to_depth_conv(target, down_x["kernel"][0], down_x["bias"][0], _PLAIN)
  kls = []
  for l in range(steps):
    gen = pick(params["generation_core"], l)
    prior_p, post_p = pick(params["prior"], l), pick(params["posterior"], l)
    up = pick(params["canvas_upsample"], l)
    prior = _conv(h_g, prior_p["kernel"], prior_p["bias"])
    mean_p, log_scale_p = jnp.split(prior, 2, axis=-1)
    if target is None:
      z = mean_p + jnp.exp(log_scale_p) * noise[:, l]
    else:
      inf = pick(params["inference_core"], l)
      u_grid = layers.space_to_depth_conv(canvas, down_u["kernel"][0], down_u["bias"][0],
                                           _PLAIN)
      inputs = jnp.concatenate([h_e, h_g, u_grid, x_grid, v, r_grid], axis=-1)
      gates = _conv(inputs, _core_kernel(inf, ["state", "image", *pose_inputs, "r"]), inf["bias"])
      h_e, c_e = layers.lstm_update(gates, c_e)
      posterior = _conv(h_e, post_p["kernel"], post_p["bias"])
      mean_q, log_scale_q = jnp.split(posterior, 2, axis=-1)
      kls.append(objective.gaussian_kl(mean_q, log_scale_q, mean_p, log_scale_p).sum((1, 2, 3)))
      z = mean_q + jnp.exp(log_scale_q) * noise[:, l]
    inputs = jnp.concatenate([h_g, z, v, r_grid], axis=-1)
    gates = _conv(inputs, _core_kernel(gen, ["state", *pose_inputs, "r"]), gen["bias"])
    h_g, c_g = layers.lstm_update(gates, c_g)
    canvas = canvas + layers.depth_to_space_conv(h_g, up["kernel"], up["bias"])
  mean = _conv(canvas, obs["kernel"][0], obs["bias"][0])
  return mean, (jnp.stack(kls, axis=1) if kls else None)
