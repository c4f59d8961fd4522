"""Weights between gqn_jax (Flax) and the PyTorch baseline, exactly, in both directions.

Only transposes, concatenations and splits: no arithmetic, so a round trip is bit-exact.

Layout differences handled here:
* Flax kernels are HWIO, PyTorch conv weights OIHW; a PyTorch ConvTranspose2d weight is
  [in, out, kh, kw], i.e. Flax's kernel[p, q, c, o] at weight[c, o, p, q].
* gqn_jax keeps each core's kernel split by input group ('state', 'image', 'pose', 'r') and
  stacks the L per-step copies on a leading axis (size 1 when cores are shared or the layer is
  single); the PyTorch cores convolve the concatenated inputs and keep one module per copy.
"""

from typing import Any, Iterator, Mapping

import numpy as np
import torch

from gqn_jax.config import ModelConfig
from experiments.baselines.torch_gqn.representation import POSE_DIM

_TOWER_LAYERS = 8


def _oihw(kernel):  # Flax HWIO -> PyTorch OIHW
  return np.transpose(kernel, (3, 2, 0, 1))


def _hwio(weight):  # PyTorch OIHW -> Flax HWIO
  return np.transpose(weight, (2, 3, 1, 0))


def _swap_pairs(array):  # Flax [p, q, c, o] <-> PyTorch ConvTranspose2d [c, o, p, q]
  return np.transpose(array, (2, 3, 0, 1))


def _core_groups(config: ModelConfig) -> dict[str, tuple[tuple[str, int], ...]]:
  """Per core, its Flax input groups in the order the PyTorch core concatenates its inputs.

  The PyTorch inference core reads [h_e, h_g, down_u(u), down_x(x_q), v, r] and the generation
  core [h_g, z, v, r]; Flax's 'state' group is the leading, step-varying part of each.
  """
  hidden, latent, r = (config.hidden_channels, config.latent_channels,
                        config.generator_r_channels)
  return {
      "inference_core": (("state", 3 * hidden), ("image", hidden), ("pose", POSE_DIM),
                         ("r", r)),
      "generation_core": (("state", hidden + latent), ("pose", POSE_DIM), ("r", r)),
  }


# Generator layers that are one conv per copy: Flax name -> (PyTorch module list, transposed).
_PER_STEP_LAYERS = {
    "prior": ("priors", False),
    "posterior": ("posteriors", False),
    "canvas_upsample": ("canvas_upsamples", True),
}
_SINGLE_LAYERS = ("image_downsample", "canvas_downsample", "observation")
_CORE_MODULES = {"inference_core": "inference_cores", "generation_core": "generation_cores"}


def _representation_layers(architecture: str) -> Iterator[tuple[tuple[str, ...], str]]:
  """(Flax path under params['representation'], PyTorch prefix) for each conv."""
  if architecture == "pyramid":
    for i in range(4):
      yield ("pyramid", f"Conv_{i}"), f"representation.encoder.convs.{i}"
  elif architecture == "tower":
    for i in range(_TOWER_LAYERS):
      yield ("tower", f"Conv_{i}"), f"representation.encoder.conv{i + 1}"
  elif architecture == "pool":
    for i in range(_TOWER_LAYERS):
      yield ("pool", "Tower_0", f"Conv_{i}"), f"representation.encoder.tower.conv{i + 1}"
  else:
    raise ValueError(f"unknown representation {architecture!r}")


def _copies(config: ModelConfig) -> int:
  return 1 if config.share_cores else config.steps


def _attention_layers(config: ModelConfig) -> tuple[str, ...]:
  """ViewAttention's dense layers (the same names in both frameworks); Flax kernels are
  [in, out], PyTorch Linear weights [out, in]."""
  if not config.view_attention:
    return ()
  cells = ("cell_key_hidden", "cell_key_out", "cell_query_hidden", "cell_query_out",
           "cell_value") if config.attention_over == "cells" else ()
  return ("key_hidden", "key_out", "query_hidden", "query_out") + cells


def _lookup(tree, path):
  for key in path:
    tree = tree[key]
  return tree


def _insert(tree, path, value):
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def flax_params_to_state_dict(params: Mapping[str, Any], config: ModelConfig
                              ) -> dict[str, torch.Tensor]:
  """gqn_jax params (with or without the outer 'params' key) -> PyTorch state dict."""
  if "params" in params:
    params = params["params"]
  array = lambda x: np.asarray(x, dtype=np.float32)
  generator = params["generator"]
  state = {}
  for flax_name, torch_name in _CORE_MODULES.items():
    core = generator[flax_name]
    groups = _core_groups(config)[flax_name]
    for i in range(_copies(config)):
      kernel = np.concatenate([array(core[group][i]) for group, _ in groups], axis=2)
      state[f"generator.{torch_name}.{i}.conv.weight"] = _oihw(kernel)
      state[f"generator.{torch_name}.{i}.conv.bias"] = array(core["bias"][i])
  for flax_name, (torch_name, transposed) in _PER_STEP_LAYERS.items():
    layer = generator[flax_name]
    prefix = "" if transposed else ".conv"
    for i in range(_copies(config)):
      kernel = array(layer["kernel"][i])
      state[f"generator.{torch_name}.{i}{prefix}.weight"] = (
          _swap_pairs(kernel) if transposed else _oihw(kernel))
      state[f"generator.{torch_name}.{i}{prefix}.bias"] = array(layer["bias"][i])
  for name in _SINGLE_LAYERS:
    state[f"generator.{name}.weight"] = _oihw(array(generator[name]["kernel"][0]))
    state[f"generator.{name}.bias"] = array(generator[name]["bias"][0])
  for path, prefix in _representation_layers(config.representation):
    conv = _lookup(params["representation"], path)
    state[f"{prefix}.weight"] = _oihw(array(conv["kernel"]))
    state[f"{prefix}.bias"] = array(conv["bias"])
  for name in _attention_layers(config):
    dense = params["attention"][name]
    state[f"attention.{name}.weight"] = array(dense["kernel"]).T
    state[f"attention.{name}.bias"] = array(dense["bias"])
  return {k: torch.from_numpy(np.array(v, dtype=np.float32, order="C")) for k, v in state.items()}


def flax_to_torch(params: Mapping[str, Any], model: torch.nn.Module) -> dict[str, torch.Tensor]:
  """Loads gqn_jax params into ``model`` (strictly: every key, every shape) and returns the
  state dict it loaded."""
  state = flax_params_to_state_dict(params, model.config)
  model.load_state_dict(state, strict=True)
  return state


def torch_to_flax(state_dict: Mapping[str, torch.Tensor], config: ModelConfig) -> dict:
  """PyTorch state dict (or any name -> tensor map with its keys, e.g. gradients) -> the
  gqn_jax params tree (without the outer 'params' key), as float32 NumPy arrays."""
  sd = {k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
        for k, v in state_dict.items()}
  used = set()

  def take(key):
    used.add(key)
    return sd[key]

  params = {}
  for flax_name, torch_name in _CORE_MODULES.items():
    groups = _core_groups(config)[flax_name]
    boundaries = np.cumsum([channels for _, channels in groups])[:-1]
    per_group = {group: [] for group, _ in groups}
    biases = []
    for i in range(_copies(config)):
      kernel = _hwio(take(f"generator.{torch_name}.{i}.conv.weight"))
      if kernel.shape[2] != sum(channels for _, channels in groups):
        raise ValueError(f"generator.{torch_name}.{i}: {kernel.shape[2]} input channels, "
                         f"the config implies {sum(c for _, c in groups)}")
      for (group, _), part in zip(groups, np.split(kernel, boundaries, axis=2)):
        per_group[group].append(part)
      biases.append(take(f"generator.{torch_name}.{i}.conv.bias"))
    core = {group: np.stack(parts) for group, parts in per_group.items()}
    core["bias"] = np.stack(biases)
    _insert(params, ("generator", flax_name), core)
  for flax_name, (torch_name, transposed) in _PER_STEP_LAYERS.items():
    prefix = "" if transposed else ".conv"
    kernels, biases = [], []
    for i in range(_copies(config)):
      weight = take(f"generator.{torch_name}.{i}{prefix}.weight")
      kernels.append(_swap_pairs(weight) if transposed else _hwio(weight))
      biases.append(take(f"generator.{torch_name}.{i}{prefix}.bias"))
    _insert(params, ("generator", flax_name), {"kernel": np.stack(kernels),
                                               "bias": np.stack(biases)})
  for name in _SINGLE_LAYERS:
    _insert(params, ("generator", name),
            {"kernel": _hwio(take(f"generator.{name}.weight"))[None],
             "bias": take(f"generator.{name}.bias")[None]})
  for path, prefix in _representation_layers(config.representation):
    _insert(params, ("representation",) + path,
            {"kernel": _hwio(take(f"{prefix}.weight")), "bias": take(f"{prefix}.bias")})
  for name in _attention_layers(config):
    _insert(params, ("attention", name),
            {"kernel": take(f"attention.{name}.weight").T, "bias": take(f"attention.{name}.bias")})
  unused = sorted(set(sd) - used)
  if unused:
    raise ValueError(f"state dict entries with no gqn_jax counterpart: {unused}")
  return _contiguous(params)


def _contiguous(tree):
  if isinstance(tree, dict):
    return {k: _contiguous(v) for k, v in tree.items()}
  return np.ascontiguousarray(tree, dtype=np.float32)
