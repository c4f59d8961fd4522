"""Typed, validated views of the ml_collections configs in ``gqn_jax/configs``.

Config files stay plain ``ConfigDict``s so that ``--config.model.steps=4`` works on the command
line; the model and the trainer only ever see the frozen dataclasses below, built (and checked)
by :func:`model_config` and :func:`optim_config`.
"""

import dataclasses
from typing import Any, Literal, Mapping

from gqn_jax import poses

REPRESENTATIONS = ("pyramid", "tower", "pool")
CONV_BACKENDS = ("auto", "xla", "explicit_vjp", "im2col")
DTYPES = ("float32", "bfloat16")


class ConfigError(ValueError):
  """A config value that cannot work; the message names the field."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Architecture of the representation and generation networks (GQN_SPEC.md)."""
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
  conv_backend: Literal["auto", "xla", "explicit_vjp", "im2col"] = "auto"  # see layers.py.
  scan_unroll: int = 1              # generator steps per scan iteration.
  remat: bool = False               # recompute, in the backward pass, each generator step and
                                    # the representation network (the pre-scan patch matrices
                                    # are rebuilt either way); on CPU import gqn_jax before any
                                    # JAX computation runs (gqn_jax/xla_flags.py).
  dtype: Literal["float32", "bfloat16"] = "float32"  # compute dtype; parameters stay float32.

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
  adam_b1: float = 0.9
  adam_b2: float = 0.999
  adam_eps: float = 1e-8
  grad_clip_norm: float = 0.0       # 0 disables clipping (the paper does not clip).


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
  for name in ("adam_b1", "adam_b2"):
    value = getattr(cfg, name)
    _require(0 <= value < 1, f"{w}.{name}", f"must lie in [0, 1); got {value!r}")
  _require(cfg.grad_clip_norm >= 0, f"{w}.grad_clip_norm",
           f"must be >= 0 (0 disables clipping); got {cfg.grad_clip_norm}")
  return cfg
