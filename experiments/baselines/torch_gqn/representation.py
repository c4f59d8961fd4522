"""Representation networks psi(x, v) and r = sum over context views, in PyTorch (NCHW).

Layer order and ReLU placement follow the paper (docs/architecture.md, "Representation
networks") and gqn_jax/representation.py, so that weights convert one to one (see convert.py).
Channel counts scale with ``r_channels`` (256 in the paper).
"""

import torch
import torch.nn.functional as F
from torch import nn

POSE_DIM = 7


def broadcast_pose(pose: torch.Tensor, height: int, width: int) -> torch.Tensor:
  """[N, 7] -> [N, 7, height, width]."""
  return pose[:, :, None, None].expand(-1, -1, height, width)


class Pyramid(nn.Module):
  """Pose concatenated onto the image, then strided convs down to a 1x1 r."""

  def __init__(self, r_channels: int = 256, image_size: int = 64):
    super().__init__()
    # Three 2x2/2 convs, then one conv over whatever is left (8x8 for a 64 px image).
    remaining = image_size // 8
    self.convs = nn.ModuleList([
        nn.Conv2d(3 + POSE_DIM, r_channels // 8, 2, stride=2),
        nn.Conv2d(r_channels // 8, r_channels // 4, 2, stride=2),
        nn.Conv2d(r_channels // 4, r_channels // 2, 2, stride=2),
        nn.Conv2d(r_channels // 2, r_channels, remaining, stride=remaining),
    ])

  def forward(self, image, pose):  # [N, 3, H, W], [N, 7] -> [N, R, 1, 1]
    x = torch.cat([image, broadcast_pose(pose, *image.shape[-2:])], dim=1)
    for conv in self.convs:
      x = F.relu(conv(x))
    return x


class Tower(nn.Module):
  """Two residual blocks down to the image/4 grid; the pose joins between them."""

  def __init__(self, r_channels: int = 256):
    super().__init__()
    wide, narrow = r_channels, r_channels // 2
    self.conv1 = nn.Conv2d(3, wide, 2, stride=2)
    self.conv2 = nn.Conv2d(wide, wide, 2, stride=2)
    self.conv3 = nn.Conv2d(wide, narrow, 3, padding=1)
    self.conv4 = nn.Conv2d(narrow, wide, 2, stride=2)
    self.conv5 = nn.Conv2d(wide + POSE_DIM, wide, 3, padding=1)
    self.conv6 = nn.Conv2d(wide + POSE_DIM, narrow, 3, padding=1)
    self.conv7 = nn.Conv2d(narrow, wide, 3, padding=1)
    self.conv8 = nn.Conv2d(wide, wide, 1)

  def forward(self, image, pose):  # [N, 3, H, W], [N, 7] -> [N, R, H/4, W/4]
    skip_in = F.relu(self.conv1(image))                     # [N, R, H/2, W/2]
    skip_out = F.relu(self.conv2(skip_in))                  # [N, R, H/4, W/4]
    x = F.relu(self.conv3(skip_in))
    x = F.relu(self.conv4(x)) + skip_out

    skip_in = torch.cat([x, broadcast_pose(pose, *x.shape[-2:])], dim=1)  # [N, R + 7, ...]
    skip_out = F.relu(self.conv5(skip_in))
    x = F.relu(self.conv6(skip_in))
    x = F.relu(self.conv7(x)) + skip_out
    return F.relu(self.conv8(x))


class Pool(nn.Module):
  """The tower averaged over its grid: a 1x1 r."""

  def __init__(self, r_channels: int = 256):
    super().__init__()
    self.tower = Tower(r_channels)

  def forward(self, image, pose):  # -> [N, R, 1, 1]
    return self.tower(image, pose).mean(dim=(2, 3), keepdim=True)


class Representation(nn.Module):
  """r = sum over the context views of psi(x_k, v_k); views whose mask is False count 0."""

  def __init__(self, architecture: str = "tower", r_channels: int = 256, image_size: int = 64,
               pixels: bool = False):
    super().__init__()
    self.pixels = pixels  # append each view's pixels, 4x4 blocks folded onto the grid
    if architecture == "pyramid":
      self.encoder = Pyramid(r_channels, image_size)
    elif architecture == "tower":
      self.encoder = Tower(r_channels)
    elif architecture == "pool":
      self.encoder = Pool(r_channels)
    else:
      raise ValueError(f"unknown representation {architecture!r}; "
                       "known: 'pyramid', 'tower', 'pool'")

  def forward(self, images, poses, mask=None, keep_views: bool = False):
    """images [B, M, 3, H, W], poses [B, M, 7], mask [B, M] bool -> r [B, R, g, g]; with
    ``keep_views`` the views' encodings [B, M, R, g, g] (masked views zero) instead."""
    batch, views = images.shape[:2]
    # All B*M views go through the encoder as one batch.
    flat_images = images.flatten(0, 1)
    encoded = self.encoder(flat_images, poses.flatten(0, 1))
    if self.pixels:
      encoded = torch.cat([encoded, fold_pixels(flat_images, encoded.shape[-1])], dim=1)
    encoded = encoded.unflatten(0, (batch, views))          # [B, M, R, g, g]
    if mask is not None:
      # where, not multiply: a non-finite padded view must not leak into r.
      encoded = torch.where(mask[:, :, None, None, None], encoded, torch.zeros_like(encoded))
    return encoded if keep_views else encoded.sum(dim=1)


def fold_pixels(images: torch.Tensor, grid: int) -> torch.Tensor:
  """[N, C, H, W] -> [N, (H / grid) (W / grid) C, grid, grid], channels ordered (row, column,
  colour) within each block as gqn_jax.representation.fold_pixels orders them."""
  n, channels, height, width = images.shape
  blocks = images.reshape(n, channels, grid, height // grid, grid, width // grid)
  return blocks.permute(0, 3, 5, 1, 2, 4).reshape(n, -1, grid, grid)


def _mlp(inputs: int, hidden: int, features: int):
  return nn.Linear(inputs, hidden), nn.Linear(hidden, features)


def _masked_softmax(logits, mask):
  logits = torch.where(mask, logits, torch.full_like(logits, -1e30))
  return torch.softmax(logits, dim=-1) * mask


class ViewAttention(nn.Module):
  """r for one query: the views' encodings weighted by softmax_m <q(v_query), k(v_m)>, q and k
  two-layer MLPs of the poses; with ``cells`` plus each query cell's attention over every cell
  of every view (gqn_jax.representation.ViewAttention)."""

  def __init__(self, pose_dim: int = 7, hidden: int = 64, features: int = 32,
               r_channels: int = 256, cells: bool = False):
    super().__init__()
    self.features, self.cells = features, cells
    self.key_hidden, self.key_out = _mlp(pose_dim, hidden, features)
    self.query_hidden, self.query_out = _mlp(pose_dim, hidden, features)
    if cells:
      self.cell_key_hidden, self.cell_key_out = _mlp(r_channels + pose_dim + 2, hidden, features)
      self.cell_query_hidden, self.cell_query_out = _mlp(pose_dim + 2, hidden, features)
      self.cell_value = nn.Linear(r_channels, r_channels)

  def forward(self, encoded, poses, mask, query_pose):
    """[B, M, R, g, g], [B, M, 7], [B, M] bool, [B, 7] -> [B, R, g, g]."""
    keys = self.key_out(F.relu(self.key_hidden(poses)))                    # [B, M, F]
    query = self.query_out(F.relu(self.query_hidden(query_pose)))          # [B, F]
    logits = torch.einsum("bmf,bf->bm", keys, query) / self.features ** 0.5
    weights = _masked_softmax(logits, mask)
    r = torch.einsum("bm,bmrgh->brgh", weights.to(encoded.dtype), encoded)
    if self.cells:
      r = r + self._cell_term(encoded, poses, mask, query_pose)
    return r

  def _cell_term(self, encoded, poses, mask, query_pose):
    batch, views, channels, rows, cols = encoded.shape
    cells = encoded.permute(0, 1, 3, 4, 2)                                # [B, M, g, g, R]
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, rows, device=encoded.device),
                            torch.linspace(-1, 1, cols, device=encoded.device), indexing="ij")
    position = torch.stack([ys, xs], -1).to(cells.dtype)                   # [g, g, 2]
    view_cells = torch.cat([
        cells, poses[:, :, None, None].to(cells.dtype).expand(-1, -1, rows, cols, -1),
        position.expand(batch, views, -1, -1, -1)], -1)
    query_cells = torch.cat([
        query_pose[:, None, None].to(cells.dtype).expand(-1, rows, cols, -1),
        position.expand(batch, -1, -1, -1)], -1)
    keys = self.cell_key_out(F.relu(self.cell_key_hidden(view_cells))).reshape(batch, -1,
                                                                              self.features)
    query = self.cell_query_out(F.relu(self.cell_query_hidden(query_cells))).reshape(
        batch, -1, self.features)
    values = self.cell_value(cells).reshape(batch, -1, channels)
    logits = torch.einsum("bqf,bkf->bqk", query, keys) / self.features ** 0.5
    key_mask = mask.repeat_interleave(rows * cols, dim=1)[:, None, :]
    weights = _masked_softmax(logits, key_mask)
    term = torch.einsum("bqk,bkr->bqr", weights.to(values.dtype), values)
    return term.reshape(batch, rows, cols, channels).permute(0, 3, 1, 2)
