"""The Generative Query Network: a representation network and a generator, trained jointly.

Three modes, all pure functions of (params, inputs, rng):

* ``GQN.__call__`` (training): z drawn from the posterior; returns the ELBO's per-example terms.
* ``GQN.reconstruct``: the same pass, returning only the observation mean.
* ``GQN.generate``: z drawn from the prior, for any query pose; no target image needed. It is
  ``GQN.render(GQN.represent(context), query_pose)``: compute r once (``represent``) and render
  it from as many poses and noise draws as wanted (``render``), as the trainer's pictures,
  evaluation and the figures do.

With ``config.view_attention`` r is every context view's encoding with its pose and mask
([B, M, g, g, C + 8], ``representation.pack_views``; C is R, plus 48 with ``r_pixels``), and
``render`` weights the views for each query pose (``representation.ViewAttention``) before the
generator sees them.

Latent noise comes from the ``'sample'`` rng stream, or is passed in as ``noise``
[B, L, G, G, Z] (``latent_noise``: each scene's noise depends on the scene's index, not on how
the batch is split over devices).

The batch contract, one dict of arrays (``batch_spec``; the input pipeline yields it, and
``dummy_batch`` makes one of zeros)::

  context_images [B, M, H, W, 3] in [0, 1]   context_poses [B, M, 7]
  context_mask   [B, M] bool (padded views False, after the real ones)
  query_image    [B, H, W, 3] in [0, 1]      query_pose    [B, 7]
"""

from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gqn_jax import objective
from gqn_jax.config import ModelConfig
from gqn_jax.generator import Generator
from gqn_jax.poses import POSE_DIM
from gqn_jax.representation import Representation, ViewAttention, view_sum

Batch = Mapping[str, jax.Array]


def batch_spec(batch_size: int, context_views: int, image_size: int) -> dict[str, Any]:
  """{name: (shape, dtype)} of one batch of the contract above."""
  size, views = image_size, context_views
  return {
      "context_images": ((batch_size, views, size, size, 3), np.float32),
      "context_poses": ((batch_size, views, POSE_DIM), np.float32),
      "context_mask": ((batch_size, views), np.bool_),
      "query_image": ((batch_size, size, size, 3), np.float32),
      "query_pose": ((batch_size, POSE_DIM), np.float32),
  }


def dummy_batch(model_cfg: ModelConfig, batch_size: int = 1, context_views: int = 1) -> Batch:
  """A batch of zeros (all views real), for initialisation and shape checks."""
  spec = batch_spec(batch_size, context_views, model_cfg.image_size)
  return {name: (jnp.ones if dtype == np.bool_ else jnp.zeros)(shape, dtype)
          for name, (shape, dtype) in spec.items()}


def latent_noise(key, model_cfg: ModelConfig, batch_size: int, offset=0):
  """[B, L, G, G, Z] standard normals; scene b's depends only on (key, offset + b)."""
  grid = model_cfg.grid_size
  shape = (model_cfg.steps, grid, grid, model_cfg.latent_channels)
  indices = offset + jnp.arange(batch_size)
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(indices)
  return jax.vmap(lambda k: jax.random.normal(k, shape))(keys)


class GQN(nn.Module):
  config: ModelConfig

  def setup(self):
    self.representation = Representation(self.config.representation, self.config.r_channels,
                                         self.config.remat, jnp.dtype(self.config.dtype),
                                         self.config.conv_backend, self.config.pose_rays,
                                         self.config.pose_order,
                                         keep_views=self.config.view_attention,
                                         pixels=self.config.r_pixels)
    if self.config.view_attention:
      self.attention = ViewAttention(cells=self.config.attention_over == "cells")
    self.generator = Generator(self.config)

  def represent(self, context_images, context_poses, context_mask=None):
    """[B, M, H, W, 3], [B, M, 7], [B, M] -> r [B, g, g, C] ([B, M, g, g, C + 8] with
    view_attention), C = config.generator_r_channels."""
    return self.representation(context_images, context_poses, context_mask)

  def render(self, r, query_pose, noise=None):
    """Observation mean [B, H, W, 3] for query poses [B, 7] from r, with z from the prior."""
    return self.generator(self._for_query(r, query_pose), query_pose, None, noise)[0]

  def _for_query(self, r, query_pose):
    """What the generator reads for each query: r itself, or its views weighted for the query."""
    return self.attention(r, query_pose) if self.config.view_attention else r

  def __call__(self, context_images, context_poses, query_pose, query_image, sigma,
               context_mask=None, noise=None) -> objective.ElboTerms:
    """Training pass: the negative ELBO's terms for each scene of the batch."""
    r = self.represent(context_images, context_poses, context_mask)
    mean, kl_per_step = self.generator(self._for_query(r, query_pose), query_pose, query_image,
                                       noise)
    return objective.ElboTerms(
        nll=objective.gaussian_nll(query_image, mean, sigma),
        kl=kl_per_step.sum(axis=-1),
        kl_per_step=kl_per_step,
        mean=mean)

  def elbo_terms(self, batch: Batch, sigma, noise=None) -> objective.ElboTerms:
    """``__call__`` on a batch of the contract above."""
    return self(batch["context_images"], batch["context_poses"], batch["query_pose"],
                batch["query_image"], sigma, batch.get("context_mask"), noise)

  def reconstruct(self, context_images, context_poses, query_pose, query_image,
                  context_mask=None, noise=None):
    """Observation mean with z from the posterior: [B, H, W, 3]."""
    r = self.represent(context_images, context_poses, context_mask)
    return self.generator(self._for_query(r, query_pose), query_pose, query_image, noise)[0]

  def generate(self, context_images, context_poses, query_pose, context_mask=None, noise=None):
    """Observation mean with z from the prior, for a query pose alone: [B, H, W, 3]."""
    return self.render(self.represent(context_images, context_poses, context_mask), query_pose,
                       noise)


class Inference:
  """A trained model's ``represent`` and ``render``, jitted, with its parameters bound (figures).

  Latent noise is passed in (``noise``), never drawn inside, so callers decide what is random.
  """

  def __init__(self, model_cfg: ModelConfig, params):
    self.config = model_cfg
    self.params = params
    model = GQN(model_cfg)
    self._represent = jax.jit(lambda params, images, poses, mask: model.apply(
        {"params": params}, images, poses, mask, method=GQN.represent))
    self._render = jax.jit(lambda params, r, pose, noise: model.apply(
        {"params": params}, r, pose, noise, method=GQN.render))

  def represent(self, images, poses, mask=None):
    """[B, M, H, W, 3], [B, M, 7], [B, M] -> r (``GQN.represent``)."""
    if mask is None:
      mask = jnp.ones(images.shape[:2], bool)
    return self._represent(self.params, images, poses, mask)

  def pooled(self, r):
    """r as one summary per scene, whatever the architecture: [B, g, g, R], the sum over the
    views of their encodings (r itself, unless view_attention keeps the views apart)."""
    return view_sum(r) if self.config.view_attention else r

  def render(self, r, query_pose, noise):
    """Observation means for query poses [B, 7] from representations r (z from the prior)."""
    return self._render(self.params, r, query_pose, noise)

  def noise(self, key, batch_size: int, offset: int = 0):
    """[B, L, G, G, Z] standard normals; row b depends only on (key, offset + b)."""
    return latent_noise(key, self.config, batch_size, offset)

  def stream(self, batch_size: int) -> "Stream":
    """An empty representation of ``batch_size`` scenes that views are added to one at a time."""
    return Stream(self, batch_size)


class Stream:
  """r built view by view: r_t = r_{t-1} + psi(x_t, v_t), earlier views never re-encoded.

  Because r is a sum over views, adding a view costs one encoder pass, whatever came before:
  an agent moving through a scene keeps r current as each frame arrives. ``r`` equals
  ``Inference.represent`` on all views seen so far (up to float32 summation order). With
  view_attention r keeps the views apart, and the new one is appended instead.
  """

  def __init__(self, model: Inference, batch_size: int):
    self.model = model
    self.batch_size = batch_size
    self.views = 0
    self.r = None  # [B, g, g, R] once a view is seen.

  def observe(self, images, poses) -> jax.Array:
    """Adds one view per scene (images [B, H, W, 3], poses [B, 7]); returns r [B, g, g, R]."""
    if images.shape[0] != self.batch_size or poses.shape[0] != self.batch_size:
      raise ValueError(f"a stream of {self.batch_size} scenes takes one view of each, got "
                       f"images {tuple(images.shape)} and poses {tuple(poses.shape)}")
    added = self.model.represent(images[:, None], poses[:, None])
    if self.r is None:
      self.r = added
    elif self.model.config.view_attention:
      self.r = jnp.concatenate([self.r, added], axis=1)
    else:
      self.r = self.r + added
    self.views += 1
    return self.r
