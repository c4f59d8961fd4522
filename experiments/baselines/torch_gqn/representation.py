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

  def __init__(self, architecture: str = "tower", r_channels: int = 256, image_size: int = 64):
    super().__init__()
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
    encoded = self.encoder(images.flatten(0, 1), poses.flatten(0, 1))
    encoded = encoded.unflatten(0, (batch, views))          # [B, M, R, g, g]
    if mask is not None:
      # where, not multiply: a non-finite padded view must not leak into r.
      encoded = torch.where(mask[:, :, None, None, None], encoded, torch.zeros_like(encoded))
    return encoded if keep_views else encoded.sum(dim=1)


class ViewAttention(nn.Module):
  """r for one query: the views' encodings weighted by softmax_m <q(v_query), k(v_m)>, q and k
  two-layer MLPs of the poses (gqn_jax.representation.ViewAttention)."""

  def __init__(self, pose_dim: int = 7, hidden: int = 64, features: int = 32):
    super().__init__()
    self.features = features
    self.key_hidden, self.key_out = nn.Linear(pose_dim, hidden), nn.Linear(hidden, features)
    self.query_hidden, self.query_out = nn.Linear(pose_dim, hidden), nn.Linear(hidden, features)

  def forward(self, encoded, poses, mask, query_pose):
    """[B, M, R, g, g], [B, M, 7], [B, M] bool, [B, 7] -> [B, R, g, g]."""
    keys = self.key_out(F.relu(self.key_hidden(poses)))                    # [B, M, F]
    query = self.query_out(F.relu(self.query_hidden(query_pose)))          # [B, F]
    logits = torch.einsum("bmf,bf->bm", keys, query) / self.features ** 0.5
    logits = torch.where(mask, logits, torch.full_like(logits, -1e30))
    weights = torch.softmax(logits, dim=1) * mask
    return torch.einsum("bm,bmrgh->brgh", weights.to(encoded.dtype), encoded)
