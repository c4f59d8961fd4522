r"""Trained models for use from Python: ``gqn_jax.load(path)``, and shipping one.

::

  import jax, gqn_jax
  model = gqn_jax.load("pretrained/rooms_ring_camera_32px")
  images = model.predict(frames, cameras, query_cameras, jax.random.key(0), samples=4)
  prediction = images.mean(axis=0)   # the point prediction gqn-evaluate scores

Frames are uint8 in [0, 255] or floats in [0, 1], [M, H, W, 3] for one scene or
[B, M, H, W, 3] for a batch, of any square size (resized to the model's as the input pipeline
resizes them). Cameras are the released format's raw ``[x, y, z, yaw, pitch]`` rows, [M, 5]
or [B, M, 5]; query cameras [Q, 5] or [B, Q, 5]. ``represent`` and ``render`` expose the two
halves: r from the context, images from r.

``python -m gqn_jax.pretrained export <run workdir> <destination>`` writes a run directory that
holds only the latest parameters and the run's config (no optimizer state), which
``gqn-evaluate`` and ``gqn-render`` accept as a ``--workdir``. Run directories, and the
destination, may be URLs such as gs://bucket/run (read and written through etils.epath).
"""

import dataclasses
import sys
from typing import Any

from etils import epath
import jax
import jax.numpy as jnp
import numpy as np

from gqn_jax import checkpoints
from gqn_jax import config as config_lib
from gqn_jax import logging_utils
from gqn_jax import poses
from gqn_jax.data import frames as frames_lib
from gqn_jax.model import Inference
from gqn_jax.model import latent_noise

CAMERA_DIM = 5  # x, y, z, yaw, pitch


@dataclasses.dataclass(frozen=True)
class Pretrained:
  """A trained GQN: its architecture, parameters and the step they were saved at."""
  path: epath.Path
  step: int
  config: config_lib.ModelConfig
  params: Any
  # The figures' jitted represent / render (evaluation.Inference): the one inference path.
  inference: Inference = dataclasses.field(init=False, repr=False, compare=False)

  def __post_init__(self):
    object.__setattr__(self, "inference", Inference(self.config, self.params))

  def represent(self, context_frames, context_cameras) -> jax.Array:
    """The scene representation r [B, g, g, C] (or [g, g, C] for one scene); with
    view_attention every view's encoding, [B, M, g, g, C + 8] (or [M, g, g, C + 8]); C is
    config.generator_r_channels (R, plus 48 with r_pixels)."""
    images, pose, single = context_inputs(self.config, context_frames, context_cameras)
    r = self.inference.represent(images, pose)
    return r[0] if single else r

  def render(self, r, query_cameras, key, samples: int = 1) -> np.ndarray:
    """Images from r for each query camera: float32 [samples, (B,) Q, H, W, 3] in [0, 1].

    Each sample draws the generator's latents from the prior with ``fold_in(key, sample)``.
    """
    _check_samples(samples)
    r = jnp.asarray(r)
    single = r.ndim == (4 if self.config.view_attention else 3)
    if single:
      r = r[None]
    cameras = _cameras(query_cameras, "query_cameras", batched=not single)
    if cameras.shape[0] != r.shape[0]:
      raise ValueError(f"query_cameras: {cameras.shape[0]} scenes, but r has {r.shape[0]}")
    batch, queries = cameras.shape[:2]
    query_pose = poses.camera_to_pose(cameras.reshape(batch * queries, CAMERA_DIM),
                                      self.config.pose_order)
    r = jnp.repeat(r, queries, axis=0)  # one r per query: [B * Q, ...]
    drawn = []
    for sample in range(samples):
      noise = latent_noise(jax.random.fold_in(key, sample), self.config, batch * queries)
      mean = self.inference.render(r, query_pose, noise)
      drawn.append(np.clip(np.asarray(mean), 0.0, 1.0))  # the Gaussian's mean may leave [0, 1]
    size = self.config.image_size
    images = np.stack(drawn).reshape(samples, batch, queries, size, size, 3)
    return images[:, 0] if single else images

  def predict(self, context_frames, context_cameras, query_cameras, key,
              samples: int = 4) -> np.ndarray:
    """Prior samples of the views from ``query_cameras``: [samples, (B,) Q, H, W, 3] in [0, 1].

    Their mean over axis 0 is the point prediction that gqn-evaluate scores.
    """
    _check_samples(samples)
    return self.render(self.represent(context_frames, context_cameras), query_cameras, key,
                       samples)

  def stream(self, scenes: int | None = None) -> "SceneStream":
    """An empty representation that views are added to one at a time, as a camera moves.

    ``scenes=None`` streams one scene (``observe`` takes a [H, W, 3] frame and a [5] camera);
    an integer B streams a batch ([B, H, W, 3] and [B, 5]).
    """
    if scenes is not None and (isinstance(scenes, bool) or not isinstance(scenes, int)
                               or scenes < 1):
      raise ValueError(f"scenes: a positive integer or None, got {scenes!r}")
    return SceneStream(self, scenes)


class SceneStream:
  """``Pretrained.stream()``: r kept current view by view (``gqn_jax.model.Stream``)."""

  def __init__(self, model: Pretrained, scenes: int | None):
    self.model = model
    self._single = scenes is None
    self._stream = model.inference.stream(1 if scenes is None else scenes)

  @property
  def views(self) -> int:
    return self._stream.views

  @property
  def r(self):
    """r of the views seen so far (``Pretrained.represent``'s shape)."""
    if self._stream.r is None:
      raise ValueError("no view observed yet: call observe(frame, camera) first")
    return self._stream.r[0] if self._single else self._stream.r

  def observe(self, frame, camera):
    """Adds one view (per scene) and returns the updated r."""
    frames = np.asarray(frame)[None] if self._single else np.asarray(frame)
    cameras = np.asarray(camera)[None] if self._single else np.asarray(camera)
    if frames.ndim != 4:
      layout = "[H, W, 3]" if self._single else "[B, H, W, 3]"
      raise ValueError(f"frame: expected {layout}, got shape {np.shape(frame)}")
    if cameras.ndim != 2:
      layout = "[5]" if self._single else "[B, 5]"
      raise ValueError(f"camera: expected {layout} x, y, z, yaw, pitch, got shape "
                       f"{np.shape(camera)}")
    images, pose, _ = context_inputs(self.model.config, frames[:, None], cameras[:, None])
    self._stream.observe(images[:, 0], pose[:, 0])
    return self.r

  def predict(self, query_cameras, key, samples: int = 4) -> np.ndarray:
    """``Pretrained.render`` from the current r."""
    return self.model.render(self.r, query_cameras, key, samples)


def context_inputs(config: config_lib.ModelConfig, context_frames, context_cameras):
  """Frames (uint8 or float in [0, 1], any square size) and raw cameras [x, y, z, yaw, pitch]
  -> the model's images [B, M, S, S, 3], poses [B, M, 7] and whether one scene was given."""
  images = np.asarray(context_frames)
  single = images.ndim == 4
  if single:
    images = images[None]
  if images.ndim != 5 or images.shape[-1] != 3 or images.shape[2] != images.shape[3]:
    raise ValueError(f"context_frames: expected [M, H, W, 3] or [B, M, H, W, 3] square RGB "
                     f"frames, got shape {np.shape(context_frames)}")
  if images.dtype == np.uint8:
    images = images.astype(np.float32) / 255.0
  elif np.issubdtype(images.dtype, np.floating):
    images = images.astype(np.float32)
    if not np.all(np.isfinite(images)) or images.min() < 0 or images.max() > 1:
      raise ValueError("context_frames: float frames must be finite and in [0, 1] "
                       "(uint8 frames are divided by 255)")
  else:
    raise ValueError(f"context_frames: uint8 or float frames, got dtype {images.dtype}")
  images = frames_lib.resize(images, config.image_size)
  cameras = _cameras(context_cameras, "context_cameras", batched=not single)
  if cameras.shape[:2] != images.shape[:2]:
    raise ValueError(f"context_cameras: shape {np.shape(context_cameras)} does not match "
                     f"context_frames' {np.shape(context_frames)[:-3]} views")
  pose = poses.camera_to_pose(cameras, config.pose_order)
  return jnp.asarray(images), jnp.asarray(pose), single


def _check_samples(samples):
  if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
    raise ValueError(f"samples must be a positive integer, got {samples!r}")


def _cameras(cameras, argument: str, *, batched: bool) -> np.ndarray:
  """Raw cameras -> float32 [B, N, 5], checked; ``argument`` names them in errors."""
  array = np.asarray(cameras, np.float32)
  want = 3 if batched else 2
  if array.ndim != want or array.shape[-1] != CAMERA_DIM:
    layout = "[B, N, 5]" if batched else "[N, 5]"
    raise ValueError(f"{argument}: expected {layout} rows of x, y, z, yaw, pitch, got shape "
                     f"{np.shape(cameras)}")
  if not np.all(np.isfinite(array)):
    raise ValueError(f"{argument}: holds NaN or infinite values")
  return array if batched else array[None]


def load(path, step: int | None = None) -> Pretrained:
  """The model in run directory ``path`` (a training workdir or an exported one).

  Raises FileNotFoundError naming the path when it holds no model, ValueError when its
  parameters were written by another architecture than its config describes.
  """
  path = epath.Path(path)  # not pathlib, which makes gs://bucket into gs:/bucket.
  if not path.is_dir():
    raise FileNotFoundError(f"{path}: no such directory (a run directory holding checkpoints/)")
  config, params = checkpoints.load_for_inference(path, step)
  if step is None:
    step = max(checkpoints.Checkpointer(path, read_only=True).all_steps())
  return Pretrained(path, int(step), config_lib.model_config(config.model), params)


def export(workdir, destination, step: int | None = None) -> epath.Path:
  """Writes ``destination``: the run's parameters at ``step`` (default latest) and its config.

  TensorBoard logs come along (the training-curves figure reads them); the optimizer state
  and the data iterator's do not, so the copy is for inference, not for resuming. An earlier
  export's checkpoints and logs there are replaced, not mixed with the new ones; other files
  (a model card) stay.
  """
  workdir, destination = epath.Path(workdir), epath.Path(destination)
  config, params = checkpoints.load_for_inference(workdir, step)
  if step is None:
    step = max(checkpoints.Checkpointer(workdir, read_only=True).all_steps())
  (destination / checkpoints.CHECKPOINT_DIR).rmtree(missing_ok=True)
  (destination / "tensorboard").rmtree(missing_ok=True)
  destination.mkdir(parents=True, exist_ok=True)
  checkpointer = checkpoints.Checkpointer(destination, max_to_keep=1, async_save=False)
  try:
    checkpointer.save(int(step), {"params": params}, config)
    checkpointer.wait_until_finished()
  finally:
    checkpointer.close()
  checkpoints.write_config(destination, config)
  logs = workdir / "tensorboard"
  for relative in logging_utils.files_under(logs):  # bytes: the two may be on different stores.
    target = destination / "tensorboard" / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes((logs / relative).read_bytes())
  return destination


def main(argv) -> None:
  if len(argv) != 4 or argv[1] != "export":
    raise SystemExit(f"usage: python -m gqn_jax.pretrained export <run workdir> <destination>")
  print(f"wrote {export(argv[2], argv[3])}")


if __name__ == "__main__":
  main(sys.argv)
