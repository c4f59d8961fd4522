"""Typed, validated views of the ml_collections configs in ``gqn_jax/configs``, and the one
place every default is written.

Config files stay plain ``ConfigDict``s so that ``--config.model.steps=4`` works on the command
line; the model and the trainer only ever see the frozen dataclasses below, built (and checked)
by :func:`model_config`, :func:`optim_config`, :func:`train_config` and :func:`data_config`.
Each dataclass's defaults are the paper's (``gqn_jax/configs/paper.py`` is built from them),
and its field comments give each field's meaning and unit. A section that lacks a field gets
its default.
"""

import dataclasses
from typing import Any, Literal, Mapping

from gqn_jax import poses

REPRESENTATIONS = ("pyramid", "tower", "pool")
CONV_BACKENDS = ("auto", "xla", "explicit_vjp", "im2col")
ATTENTION_SCOPES = ("views", "cells")
PIXEL_BLOCK_CHANNELS = 4 * 4 * 3  # r_pixels: one 4x4 RGB block per cell of the image/4 grid
DTYPES = ("float32", "bfloat16")


class ConfigError(ValueError):
  """A config value that cannot work; the message names the field."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Architecture of the representation and generation networks.

  The paper's networks, layer by layer: docs/architecture.md, "The paper's networks".
  """
  image_size: int = 64              # pixels per side; a multiple of 4 (the generator's grid is
                                    # image/4), at least 8.
  representation: Literal["pyramid", "tower", "pool"] = "tower"
  r_channels: int = 256             # channels of r.
  steps: int = 12                   # L, generator steps.
  hidden_channels: int = 128        # ConvLSTM state channels of both cores.
  canvas_channels: int = 128        # channels of the canvas u (and of its 4x4/4 downsample).
  latent_channels: int = 3          # channels of each z_l on the grid.
  kernel_size: int = 5              # core and head convolution kernels.
  share_cores: bool = False         # one set of core weights for all L steps.
  pose_order: poses.PoseOrder = "sin_cos"
  pose_rays: bool = False           # each cell where the pose joins (the representation
                                    # network's grid, both cores' grid) also sees its viewing
                                    # ray (poses.ray_map): not in the paper, whose pose is only
                                    # broadcast.
  view_attention: bool = False      # r for each query is a weighted mean of the context views'
                                    # encodings, the weights a softmax over views of a learnt
                                    # match between query and view poses (not in the paper,
                                    # whose r is the plain sum).
  attention_over: Literal["views", "cells"] = "views"  # with view_attention: "cells" adds,
                                    # for each cell of the query's grid, attention over every
                                    # cell of every view, matched by pose, cell position and
                                    # content (ViewAttention's docstring).
  r_pixels: bool = False            # tower only: each view's r also carries its pixels,
                                    # 4x4 blocks folded onto r's grid (48 channels), so that the
                                    # generator can copy what a view close to the query saw.
  conv_backend: Literal["auto", "xla", "explicit_vjp", "im2col"] = "auto"  # layers.choose;
                                    # the generator's and the representation's convolutions.
  scan_unroll: int = 1              # generator steps per scan iteration.
  remat: bool = False               # recompute, in the backward pass, each generator step and
                                    # the representation network (the pre-scan patch matrices
                                    # are rebuilt either way); on the CPU it saves memory only
                                    # with xla_flags.set_cpu_flags() called before JAX
                                    # starts, as the entry points do (gqn_jax/xla_flags.py).
  dtype: Literal["float32", "bfloat16"] = "float32"  # compute dtype; parameters stay float32.

  @property
  def generator_r_channels(self) -> int:
    """Channels of r as the generator reads it: R, and with r_pixels a 4x4x3 pixel block."""
    return self.r_channels + PIXEL_BLOCK_CHANNELS * self.r_pixels

  @property
  def grid_size(self) -> int:
    """Side of the generator's grid: the image downsampled by 4."""
    return self.image_size // 4


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  """The paper's recipe: Adam, an annealed learning rate and an annealed pixel sigma."""
  lr_initial: float = 5e-4          # mu_i
  lr_final: float = 5e-5            # mu_f
  lr_anneal_steps: int = 1_600_000  # steps over which mu goes linearly from mu_i to mu_f.
  sigma_initial: float = 2.0        # sigma_i, pixel standard deviation at step 0.
  sigma_final: float = 0.7          # sigma_f
  sigma_anneal_steps: int = 200_000
  # Step at which the sigma anneal starts (sigma_initial until then). A resumed run can begin a
  # second anneal this way: sigma_initial set to the value it has reached, begin at its step.
  sigma_anneal_begin: int = 0
  adam_b1: float = 0.9
  adam_b2: float = 0.999
  adam_eps: float = 1e-8
  grad_clip_norm: float = 0.0       # 0 disables clipping (the paper does not clip).
  free_nats_per_step: float = 0.0   # each generator step's KL counts at least this much in the
                                    # minimised loss (objective.training_loss); 0 is the paper's
                                    # ELBO. Logged losses are always the ELBO.


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """The training loop (gqn_jax/trainer.py): batch, length, seed, and how often it logs,
  evaluates, draws pictures and saves."""
  batch_size: int = 36              # scenes per step, over all devices and processes.
  num_steps: int = 2_000_000        # optimizer steps of the whole run (resumed runs included).
  seed: int = 0                     # initial parameters, latent noise and data order.
  init_from: str = ""               # a run directory (a training workdir or an exported model)
                                    # whose latest parameters start this run instead of seed's;
                                    # the optimizer and the step count start afresh. Used only
                                    # while the workdir has no checkpoint of its own.
  log_every_steps: int = 100        # mean train metrics to TensorBoard.
  checkpoint_every_steps: int = 1_000
  keep_checkpoints: int = 3         # the last this many checkpoints are kept...
  keep_best_checkpoint: bool = True  # ...and the one of lowest eval loss...
  keep_checkpoint_every_steps: int = 0  # ...and every step that is a multiple of this (0: none).
  eval_every_steps: int = 5_000     # 0: never.
  eval_batches: int = 8             # test batches per evaluation.
  eval_batch_size: int = 0          # 0: batch_size (train_config fills it in).
  image_every_steps: int = 5_000    # context | query | reconstruction | prior samples; 0: never.
  image_scenes: int = 4             # rows of that picture.
  prior_samples: int = 3            # prior samples per row.
  progress_bar: bool = True


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where the scenes come from (gqn_jax/input_pipeline.py). ``dataset`` has no default: every
  config names its data."""
  dataset: str                      # a released name, or generated_<name> for generated scenes.
  max_context_views: int | None = None  # K; M ~ U{1..K} per batch (5 rooms, 7 jaco, 20 mazes,
                                    # 14 SM); None: the released dataset's K.
  data_dir: str | None = "data/tfds"  # where `tfds build data/gqn` wrote the dataset.
  train_split: str = "train"        # a TFDS split expression, e.g. "train[:1200]".
  eval_split: str = "test"
  worker_count: int = 0             # grain decoding processes; 0 decodes in threads.


def _build(cls, section: Mapping[str, Any], where: str):
  fields = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(section) - fields)
  if unknown:
    raise ConfigError(f"{where}: unknown field(s) {unknown}; known: {sorted(fields)}")
  return cls(**dict(section))


def _require(condition: bool, where: str, message: str):
  if not condition:
    raise ConfigError(f"{where}: {message}")


def model_config(section: Mapping[str, Any]) -> ModelConfig:
  """Builds and validates a ModelConfig from the ``model`` section of a config."""
  cfg = _build(ModelConfig, section, "config.model")
  w = "config.model"
  for name in ("image_size", "r_channels", "steps", "hidden_channels", "canvas_channels",
               "latent_channels", "kernel_size", "scan_unroll"):
    value = getattr(cfg, name)
    _require(isinstance(value, int) and value > 0, f"{w}.{name}",
             f"must be a positive integer, got {value!r}")
  _require(cfg.image_size % 4 == 0 and cfg.image_size >= 8, f"{w}.image_size",
           f"must be a multiple of 4 (the generator works on image/4) and at least 8; "
           f"got {cfg.image_size}")
  _require(cfg.representation in REPRESENTATIONS, f"{w}.representation",
           f"must be one of {REPRESENTATIONS}, got {cfg.representation!r}")
  _require(cfg.r_channels % 8 == 0, f"{w}.r_channels",
           f"must be a multiple of 8 (the pyramid's layers have r/8, r/4, r/2 channels); "
           f"got {cfg.r_channels}")
  _require(cfg.kernel_size % 2 == 1, f"{w}.kernel_size",
           f"must be odd so that 'same' padding is symmetric; got {cfg.kernel_size}")
  _require(cfg.pose_order in poses.POSE_ORDERS, f"{w}.pose_order",
           f"must be one of {poses.POSE_ORDERS}, got {cfg.pose_order!r}")
  _require(cfg.conv_backend in CONV_BACKENDS, f"{w}.conv_backend",
           f"must be one of {CONV_BACKENDS}, got {cfg.conv_backend!r}")
  _require(cfg.attention_over in ATTENTION_SCOPES, f"{w}.attention_over",
           f"must be one of {ATTENTION_SCOPES}, got {cfg.attention_over!r}")
  _require(cfg.attention_over == "views" or cfg.view_attention, f"{w}.attention_over",
           f"{cfg.attention_over!r} needs model.view_attention=True")
  _require(not cfg.r_pixels or cfg.representation == "tower", f"{w}.r_pixels",
           f"needs model.representation='tower' (r on the image/4 grid), got "
           f"{cfg.representation!r}")
  _require(cfg.dtype in DTYPES, f"{w}.dtype", f"must be one of {DTYPES}, got {cfg.dtype!r}")
  _require(cfg.scan_unroll <= cfg.steps, f"{w}.scan_unroll",
           f"cannot exceed steps ({cfg.steps}); got {cfg.scan_unroll}")
  return cfg


def optim_config(section: Mapping[str, Any]) -> OptimConfig:
  """Builds and validates an OptimConfig from the ``optim`` section of a config."""
  cfg = _build(OptimConfig, section, "config.optim")
  w = "config.optim"
  for name in ("lr_initial", "lr_final", "sigma_initial", "sigma_final"):
    value = getattr(cfg, name)
    _require(value > 0, f"{w}.{name}", f"must be positive, got {value!r}")
  for name in ("lr_anneal_steps", "sigma_anneal_steps"):
    value = getattr(cfg, name)
    _require(isinstance(value, int) and value > 0, f"{w}.{name}",
             f"must be a positive integer, got {value!r}")
  _require(isinstance(cfg.sigma_anneal_begin, int) and cfg.sigma_anneal_begin >= 0,
           f"{w}.sigma_anneal_begin", f"must be an integer >= 0, got {cfg.sigma_anneal_begin!r}")
  for name in ("adam_b1", "adam_b2"):
    value = getattr(cfg, name)
    _require(0 <= value < 1, f"{w}.{name}", f"must lie in [0, 1); got {value!r}")
  _require(cfg.free_nats_per_step >= 0, f"{w}.free_nats_per_step",
           f"must be >= 0 (0 is the paper's ELBO); got {cfg.free_nats_per_step}")
  _require(cfg.grad_clip_norm >= 0, f"{w}.grad_clip_norm",
           f"must be >= 0 (0 disables clipping); got {cfg.grad_clip_norm}")
  return cfg


def train_config(section: Mapping[str, Any]) -> TrainConfig:
  """Builds and validates a TrainConfig from the ``train`` section (defaults where missing)."""
  cfg = _build(TrainConfig, section, "config.train")
  positive = ("batch_size", "num_steps", "log_every_steps", "checkpoint_every_steps",
              "keep_checkpoints", "eval_batches", "image_scenes", "prior_samples")
  for name in positive + ("eval_every_steps", "image_every_steps", "eval_batch_size", "seed",
                          "keep_checkpoint_every_steps"):
    value, least = getattr(cfg, name), 1 if name in positive else 0
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
      kind = "positive" if least else "non-negative"
      raise ConfigError(f"config.train.{name} must be a {kind} integer, got {value!r}")
  return dataclasses.replace(cfg, eval_batch_size=cfg.eval_batch_size or cfg.batch_size)


def data_config(section: Mapping[str, Any]) -> DataConfig:
  """Builds and validates a DataConfig from the ``data`` section (defaults where missing)."""
  if "dataset" not in section:
    raise ConfigError("config.data.dataset is missing: a released dataset name or "
                      "generated_<name>")
  cfg = _build(DataConfig, section, "config.data")
  views = cfg.max_context_views
  _require(views is None or (isinstance(views, int) and views > 0),
           "config.data.max_context_views", f"must be a positive integer or None, got {views!r}")
  _require(isinstance(cfg.worker_count, int) and cfg.worker_count >= 0,
           "config.data.worker_count", f"must be a non-negative integer, got {cfg.worker_count!r}")
  return cfg
