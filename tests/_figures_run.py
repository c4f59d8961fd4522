"""A tiny trained run and held-out scenes with factors, for the evaluation and figure tests.

The run is the tiny config (16 px) on the hand-written ``rooms_ring_camera`` scenes of
``_data_builder`` (random-noise frames), trained for a few steps so its parameters are not the
initial ones, and saved with the trainer's own ``checkpoints.Checkpointer`` so that the CLIs read
it through ``checkpoints.load_for_inference`` as they read any run.
"""

import functools
import json
import pathlib

import jax
import ml_collections
import numpy as np

import _data_builder
from conftest import random_batch, tiny_model_config, tiny_optim_config
from gqn_jax import checkpoints
from gqn_jax import parallel
from gqn_jax import train_step
from gqn_jax.configs import tiny
from gqn_jax.model import GQN

DATASET = "rooms_ring_camera"
TRAIN_STEPS = 2
SHAPES = ("box", "sphere", "cone")
COLOURS = ((0.9, 0.1, 0.1), (0.1, 0.2, 0.9))


def prepared_data(tmp_path_factory):
  """(data_dir, written scenes): the dataset test_input_pipeline builds, shared per session."""
  data_dir, _, written = _data_builder.prepared(tmp_path_factory)
  return data_dir, written


def run_config(data_dir, view_attention: bool = False) -> ml_collections.ConfigDict:
  config = tiny.get_config()
  config.model.view_attention = view_attention
  config.data.dataset = DATASET
  config.data.data_dir = str(data_dir)
  return config


@functools.lru_cache(maxsize=2)
def trained_state(steps: int = TRAIN_STEPS, view_attention: bool = False
                  ) -> train_step.TrainState:
  """The tiny model's TrainState after a few Adam steps on random batches (made once)."""
  model_cfg = tiny_model_config(view_attention=view_attention)
  optim_cfg = tiny_optim_config()
  model = GQN(model_cfg)
  state = jax.jit(lambda key: train_step.create_train_state(model, optim_cfg, key))(
      jax.random.key(0))
  step = train_step.make_train_step(model, optim_cfg, parallel.data_mesh(jax.devices()[:1]))
  for index in range(steps):
    state, _ = step(state, random_batch(model_cfg, jax.random.key(10 + index), 4, 3),
                    jax.random.key(1))
  return state


def write_run(workdir, config, state) -> pathlib.Path:
  """A workdir holding ``state`` as its one checkpoint, as the trainer writes it."""
  workdir = pathlib.Path(workdir)
  checkpointer = checkpoints.Checkpointer(workdir, async_save=False)
  try:
    checkpoints.write_config(workdir, config)
    checkpointer.save(int(state.step), state, config)
    checkpointer.wait_until_finished()
  finally:
    checkpointer.close()
  return workdir


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


def write_events(logdir, steps=range(0, 600, 5)) -> dict[str, list[tuple[int, float]]]:
  """Scalars as the trainer logs them (logging_utils.SummaryWriter); returns what was written."""
  from gqn_jax import logging_utils  # pylint: disable=g-import-not-at-top
  writer = logging_utils.SummaryWriter(logdir)
  written = {}
  for step in steps:
    kl = 50.0 * np.exp(-step / 200) + 1.0
    nll = 900.0 + 400.0 * np.exp(-step / 100) + (step % 7)
    values = {"train/loss": nll + kl, "train/nll": nll, "train/kl": kl,
              "train/kl_per_step/1": kl / 3, "train/steps_per_second": 3.0,
              "train/sigma": max(0.7, 2.0 - step / 400)}
    if step % 100 == 0:
      values["eval/loss"] = nll + kl + 10.0
    writer.scalars(step, values)
    for tag, value in values.items():
      written.setdefault(tag, []).append((step, float(np.float32(value))))
  writer.close()
  return written


def image_size_of(path) -> tuple[int, int]:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(path) as image:
    image.verify()
  with Image.open(path) as image:
    return image.size


def all_finite(tree) -> bool:
  return all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(tree))
