"""A tiny trained run and held-out scenes with factors, for the evaluation and figure tests.

The run is the tiny config (16 px) on the hand-written ``rooms_ring_camera`` scenes of
``_data_builder`` (random-noise frames), trained for a few steps so its parameters are not the
initial ones. Its checkpoint is read through ``gqn_jax.checkpoints.load_for_inference``; until
the trainer's checkpoints module exists, ``install_loader`` puts a stand-in with that contract in
its place (it reads the run's config and parameters from a pickle in the workdir).
"""

import json
import pathlib
import pickle
import sys
import types

import jax
import ml_collections
import numpy as np

import _data_builder
from conftest import tiny_model_config
from gqn_jax import train_step
from gqn_jax.configs import tiny
from gqn_jax.model import GQN

DATASET = "rooms_ring_camera"
STAND_IN_FILE = "stand_in_checkpoint.pkl"
TRAIN_STEPS = 2
SHAPES = ("box", "sphere", "cone")
COLOURS = ((0.9, 0.1, 0.1), (0.1, 0.2, 0.9))


def prepared_data(tmp_path_factory):
  """(data_dir, written scenes): the dataset test_input_pipeline builds, shared per session."""
  data_dir, _, written = _data_builder.prepared(tmp_path_factory)
  return data_dir, written


def run_config(data_dir) -> ml_collections.ConfigDict:
  config = tiny.get_config()
  config.data.dataset = DATASET
  config.data.data_dir = str(data_dir)
  return config


def trained_params(steps: int = TRAIN_STEPS):
  """Tiny-model parameters after a few Adam steps on random batches."""
  from conftest import random_batch, tiny_optim_config  # pylint: disable=g-import-not-at-top
  model_cfg, optim_cfg = tiny_model_config(), tiny_optim_config()
  model = GQN(model_cfg)
  state = jax.jit(lambda key: train_step.create_train_state(model, optim_cfg, key))(
      jax.random.key(0))
  step = train_step.jit_train_step(model, optim_cfg)
  for index in range(steps):
    state, _ = step(state, random_batch(model_cfg, jax.random.key(10 + index), 4, 3),
                    jax.random.key(1))
  return jax.device_get(state.params)


def write_run(workdir, config, params) -> pathlib.Path:
  """A workdir whose checkpoint load_for_inference returns (config, params)."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  with open(workdir / STAND_IN_FILE, "wb") as file:
    pickle.dump({"config": config.to_dict(), "params": params}, file)
  return workdir


def _stand_in_load_for_inference(workdir, step=None):
  path = pathlib.Path(workdir) / STAND_IN_FILE
  if not path.exists():
    raise FileNotFoundError(f"{workdir}: no checkpoint")
  with open(path, "rb") as file:
    saved = pickle.load(file)
  del step
  return ml_collections.ConfigDict(saved["config"]), saved["params"]


def install_loader(monkeypatch) -> None:
  """Makes gqn_jax.checkpoints.load_for_inference read runs written by ``write_run``."""
  module = types.ModuleType("gqn_jax.checkpoints")
  module.load_for_inference = _stand_in_load_for_inference
  monkeypatch.setitem(sys.modules, "gqn_jax.checkpoints", module)


def write_factors(scenes_dir, written_test_scenes, per_shard: int = 10) -> pathlib.Path:
  """Sidecar factors for the hand-written test scenes, as gqn_jax.generate writes them.

  Scene i has i % 3 + 1 objects, the first of shape SHAPES[i % 3] and colour COLOURS[i % 2].
  """
  from gqn_jax import released_format  # pylint: disable=g-import-not-at-top
  count = len(written_test_scenes)
  shards = max(1, -(-count // per_shard))
  directory = pathlib.Path(scenes_dir) / DATASET / "test"
  directory.mkdir(parents=True, exist_ok=True)
  for shard in range(shards):
    lines = []
    for index in range(shard * per_shard, min(count, (shard + 1) * per_shard)):
      objects = [{"shape": SHAPES[(index + k) % 3], "rgb": list(COLOURS[(index + k) % 2]),
                  "position": [0.0, 0.0, 0.0], "yaw": 0.0} for k in range(index % 3 + 1)]
      lines.append(json.dumps({"family": DATASET, "split": "test", "index": index,
                               "objects": objects, "wall": {"colour": "red"},
                               "floor": {"colour": ["white", "blue"][index % 2]}}))
    name = released_format.shard_name(shard + 1, shards) + ".factors.jsonl"
    (directory / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
  return pathlib.Path(scenes_dir)


def image_size_of(path) -> tuple[int, int]:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(path) as image:
    image.verify()
  with Image.open(path) as image:
    return image.size


def all_finite(tree) -> bool:
  return all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(tree))
