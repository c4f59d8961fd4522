"""Representation networks psi(x_k, v_k) and the scene representation r = sum_k psi(x_k, v_k).

Three architectures from the paper (layer by layer in docs/architecture.md, "Representation
networks"): ``pyramid`` (r is 1x1), ``tower`` (r is on the image/4 grid) and ``pool`` (tower,
averaged to 1x1). Channel counts scale with ``r_channels`` (256 in the paper) so that tiny test
models keep the same shape of network. ``dtype`` is the compute dtype of the convolutions (the
model's ``dtype``); parameters stay float32. ``conv_backend`` picks the kernels that run the
convolutions, as for the generator (``layers.choose``, ``layers.flax_conv``); the parameters are
the same whichever runs.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import flax.linen as nn

from gqn_jax import layers
from gqn_jax import poses


def _conv(dtype, conv_backend: str):
  """nn.Conv in ``dtype``, its convolutions run by the platform's chosen kernels."""
  choice = layers.choose(conv_backend, dtype, jax.default_backend())
  return functools.partial(nn.Conv, dtype=dtype, conv_general_dilated=layers.flax_conv(choice))


def _pose_map(pose, size, rays: bool, order: poses.PoseOrder):
  """[N, 7] -> [N, size, size, 7] broadcast, with each cell's viewing ray after it if ``rays``
  ([N, size, size, 13])."""
  broadcast = jnp.broadcast_to(pose[:, None, None, :], (pose.shape[0], size, size, pose.shape[-1]))
  if not rays:
    return broadcast
  return jnp.concatenate([broadcast, poses.ray_map(pose, size, order)], axis=-1)


class Pyramid(nn.Module):
  """Pose broadcast onto the image, four strided convs down to a 1x1 r."""
  r_channels: int = 256
  dtype: Any = jnp.float32
  conv_backend: str = "auto"
  pose_rays: bool = False
  pose_order: poses.PoseOrder = "sin_cos"

  @nn.compact
  def __call__(self, image, pose):  # image [N, H, W, 3], pose [N, 7] -> [N, 1, 1, R]
    conv = _conv(self.dtype, self.conv_backend)
    pose = _pose_map(pose, image.shape[1], self.pose_rays, self.pose_order)
    x = jnp.concatenate([image, pose.astype(image.dtype)], axis=-1)
    for fraction in (8, 4, 2):
      x = nn.relu(conv(self.r_channels // fraction, (2, 2), strides=2, padding="VALID")(x))
    # The last conv covers whatever is left (8x8 for 64 px images), giving 1x1.
    remaining = x.shape[1:3]
    return nn.relu(conv(self.r_channels, remaining, strides=remaining, padding="VALID")(x))


class Tower(nn.Module):
  """Two residual blocks down to the image/4 grid, the pose joined in between."""
  r_channels: int = 256
  dtype: Any = jnp.float32
  conv_backend: str = "auto"
  pose_rays: bool = False
  pose_order: poses.PoseOrder = "sin_cos"

  @nn.compact
  def __call__(self, image, pose):  # image [N, H, W, 3], pose [N, 7] -> [N, H/4, W/4, R]
    wide, narrow = self.r_channels, self.r_channels // 2
    conv = _conv(self.dtype, self.conv_backend)
    down = functools.partial(conv, kernel_size=(2, 2), strides=2, padding="VALID")
    skip_in = nn.relu(down(wide)(image))     # [N, H/2, W/2, R]
    skip_out = nn.relu(down(wide)(skip_in))  # [N, H/4, W/4, R]
    x = nn.relu(conv(narrow, (3, 3), padding="SAME")(skip_in))
    x = nn.relu(down(wide)(x)) + skip_out

    pose = _pose_map(pose, x.shape[1], self.pose_rays, self.pose_order)
    skip_in = jnp.concatenate([x, pose.astype(x.dtype)], axis=-1)  # [.., R + 7 (+ 6)]
    skip_out = nn.relu(conv(wide, (3, 3), padding="SAME")(skip_in))
    x = nn.relu(conv(narrow, (3, 3), padding="SAME")(skip_in))
    x = nn.relu(conv(wide, (3, 3), padding="SAME")(x)) + skip_out
    return nn.relu(conv(wide, (1, 1))(x))


class Pool(nn.Module):
  """The tower, averaged over its grid to a 1x1 r."""
  r_channels: int = 256
  dtype: Any = jnp.float32
  conv_backend: str = "auto"
  pose_rays: bool = False
  pose_order: poses.PoseOrder = "sin_cos"

  @nn.compact
  def __call__(self, image, pose):  # -> [N, 1, 1, R]
    tower = Tower(self.r_channels, self.dtype, self.conv_backend, self.pose_rays,
                  self.pose_order)
    return jnp.mean(tower(image, pose), axis=(1, 2), keepdims=True)


ENCODERS = {"pyramid": Pyramid, "tower": Tower, "pool": Pool}


class Representation(nn.Module):
  """r = sum over the context views of psi(x_k, v_k); views where ``mask`` is False count 0.

  With ``keep_views`` r is instead every view's psi with its pose and mask (``pack_views``),
  which ``ViewAttention`` weights for each query. The sum makes r independent of the order of
  the views and lets one compiled function serve any number of them (pad to a fixed M and
  mask). With ``remat`` the encoder's activations are recomputed in the backward pass instead of
  being kept through the generator's.
  """
  architecture: str = "tower"
  r_channels: int = 256
  remat: bool = False
  dtype: Any = jnp.float32
  conv_backend: str = "auto"
  pose_rays: bool = False
  pose_order: poses.PoseOrder = "sin_cos"
  keep_views: bool = False  # return pack_views(...) for ViewAttention instead of the sum.
  pixels: bool = False      # append each view's pixels, 4x4 blocks folded onto the grid.

  @nn.compact
  def __call__(self, images, context_poses, mask=None):
    """images [B, M, H, W, 3], context_poses [B, M, 7], mask [B, M] (bool) -> r [B, g, g, R]
    (with ``keep_views``: [B, M, g, g, R + 8], or R + 56 with ``pixels``)."""
    batch, views = images.shape[:2]
    encoder_class = ENCODERS[self.architecture]
    if self.remat:
      encoder_class = nn.remat(encoder_class)
    encoder = encoder_class(self.r_channels, self.dtype, self.conv_backend, self.pose_rays,
                            self.pose_order, name=self.architecture)
    flat_images = images.reshape(batch * views, *images.shape[2:])
    encoded = encoder(flat_images,
                      context_poses.reshape(batch * views, context_poses.shape[-1]))
    if self.pixels:
      encoded = jnp.concatenate([encoded, fold_pixels(flat_images, encoded.shape[1])], -1)
    encoded = encoded.reshape(batch, views, *encoded.shape[1:])  # [B, M, g, g, R (+ 48)]
    if self.keep_views:
      if mask is None:
        mask = jnp.ones((batch, views), bool)
      return pack_views(encoded.astype(jnp.float32), context_poses, mask)
    if mask is not None:
      encoded = jnp.where(mask[:, :, None, None, None], encoded, 0.0)
    return jnp.sum(encoded, axis=1, dtype=jnp.float32)  # summed in float32 whatever the dtype


def fold_pixels(images, grid: int):
  """[N, H, W, C] -> [N, grid, grid, (H / grid) (W / grid) C]: each grid cell's pixel block as
  channels."""
  n, height, width, channels = images.shape
  block = height // grid
  blocks = images.reshape(n, grid, block, grid, width // grid, channels)
  return blocks.transpose(0, 1, 3, 2, 4, 5).reshape(n, grid, grid, -1)


def pack_views(encoded, context_poses, mask):
  """Per-view encodings [B, M, g, g, R], poses [B, M, 7], mask [B, M] -> one array
  [B, M, g, g, R + 8] (poses and mask broadcast over the grid), the r of an attention model.

  Padded views' encodings become 0 (where, not a product: a non-finite one must not reach r
  through its zero weight)."""
  encoded = jnp.where(mask[:, :, None, None, None], encoded, 0.0)
  grid = encoded.shape[2:4]
  pose = jnp.broadcast_to(context_poses[:, :, None, None, :],
                          (*context_poses.shape[:2], *grid, context_poses.shape[-1]))
  flag = jnp.broadcast_to(mask[:, :, None, None, None], (*mask.shape, *grid, 1))
  return jnp.concatenate([encoded, pose.astype(encoded.dtype), flag.astype(encoded.dtype)], -1)


def unpack_views(packed, pose_dim: int = poses.POSE_DIM):
  """``pack_views``'s inverse: (encodings [B, M, g, g, R], poses [B, M, 7], mask [B, M])."""
  encoded = packed[..., :-(pose_dim + 1)]
  view_poses = packed[:, :, 0, 0, -(pose_dim + 1):-1].astype(jnp.float32)
  return encoded, view_poses, packed[:, :, 0, 0, -1] > 0.5


def view_sum(packed, pose_dim: int = poses.POSE_DIM):
  """The paper's r (the sum over the real views of their encodings) from ``pack_views``'s
  array: [B, g, g, R]."""
  encoded, _, mask = unpack_views(packed, pose_dim)
  return jnp.sum(jnp.where(mask[:, :, None, None, None], encoded, 0.0), axis=1)


class ViewAttention(nn.Module):
  """r for one query pose: the views' encodings weighted by softmax_m <q(v_query), k(v_m)>.

  q and k are small MLPs of the poses, so the match can learn any smooth closeness of two
  cameras (the yaw's sin and cos give cos(yaw - yaw') bilinearly; distance needs the hidden
  layer). The weights sum to 1, so r does not grow with M as the paper's sum does. Reads
  ``pack_views``'s array; padded views get weight 0, and with no view at all r is 0 (as the
  sum over no views).

  With ``cells`` each cell of the query's grid also attends over every cell of every view
  (keys from the cell's encoding, its view's pose and its position; queries from the query
  pose and the query cell's position), and that term is added: what a query cell shows may lie
  at another cell of the view that saw it. The per-view term keeps r's layout from the first
  step, when the cell attention is still near uniform.
  """
  features: int = 32
  cells: bool = False

  @nn.compact
  def __call__(self, packed, query_pose):  # [B, M, g, g, R + 8], [B, 7] -> [B, g, g, R]
    encoded, view_poses, mask = unpack_views(packed, query_pose.shape[-1])
    encoded = encoded.astype(jnp.float32)
    keys = _mlp(self.features, "key")(view_poses)       # [B, M, F]
    query = _mlp(self.features, "query")(query_pose)    # [B, F]
    logits = jnp.einsum("bmf,bf->bm", keys, query) / jnp.sqrt(self.features)
    r = jnp.einsum("bm,bmghr->bghr", _masked_softmax(logits, mask), encoded)
    if self.cells:
      r = r + self._cell_term(encoded, view_poses, mask, query_pose)
    return r

  def _cell_term(self, encoded, view_poses, mask, query_pose):
    batch, views, rows, cols, channels = encoded.shape
    ys, xs = jnp.meshgrid(jnp.linspace(-1, 1, rows), jnp.linspace(-1, 1, cols), indexing="ij")
    position = jnp.stack([ys, xs], -1)                  # [g, g, 2]
    view_cells = jnp.concatenate([
        encoded,
        jnp.broadcast_to(view_poses[:, :, None, None], (batch, views, rows, cols,
                                                         view_poses.shape[-1])),
        jnp.broadcast_to(position, (batch, views, rows, cols, 2))], -1)
    query_cells = jnp.concatenate([
        jnp.broadcast_to(query_pose[:, None, None], (batch, rows, cols, query_pose.shape[-1])),
        jnp.broadcast_to(position, (batch, rows, cols, 2))], -1)
    keys = _mlp(self.features, "cell_key")(view_cells).reshape(batch, -1, self.features)
    query = _mlp(self.features, "cell_query")(query_cells).reshape(batch, -1, self.features)
    values = nn.Dense(channels, name="cell_value")(encoded).reshape(batch, -1, channels)
    logits = jnp.einsum("bqf,bkf->bqk", query, keys) / jnp.sqrt(self.features)
    key_mask = jnp.repeat(mask, rows * cols, axis=1)[:, None, :]        # [B, 1, M g g]
    weights = _masked_softmax(logits, key_mask)
    return jnp.einsum("bqk,bkr->bqr", weights, values).reshape(batch, rows, cols, channels)


def _mlp(features: int, name: str):
  hidden = nn.Dense(64, name=f"{name}_hidden")
  out = nn.Dense(features, name=f"{name}_out")
  return lambda x: out(nn.relu(hidden(x)))


def _masked_softmax(logits, mask):
  """Softmax over the last axis with masked entries at weight 0. A large finite number, not
  -inf, for them: with nothing unmasked the softmax is uniform and the mask zeroes it, and no
  inf reaches the gradients."""
  return jax.nn.softmax(jnp.where(mask, logits, -1e30), axis=-1) * mask
