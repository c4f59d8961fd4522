"""The models shipped under pretrained/: each loads, draws images, and matches its config file.

A shipped model is the parameters-only export of a run of one of the reference configs; if that
config changes, the shipped model no longer is what `make reference` reproduces, and this test
says which field moved.
"""

import json
import pathlib

import jax
import numpy as np
import pytest

from gqn_jax import checkpoints
from gqn_jax import config as config_lib
from gqn_jax import pretrained
from gqn_jax import train_step
from gqn_jax.configs import reference
from gqn_jax.configs import reference_continued
from gqn_jax.configs import reference_shepard_metzler
from gqn_jax.model import GQN

PRETRAINED = pathlib.Path(__file__).resolve().parent.parent / "pretrained"
# Shipped directory -> the config that trained it.
SHIPPED = {
    "rooms_ring_camera_32px": reference,
    "shepard_metzler_7_parts_32px": reference_shepard_metzler,
}
MAX_BYTES = 50 * 2**20


def test_every_shipped_directory_is_listed():
  assert sorted(p.name for p in PRETRAINED.iterdir() if p.is_dir()) == sorted(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_matches_its_config(name):
  directory = PRETRAINED / name
  assert (directory / "MODEL_CARD.md").is_file()
  size = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
  assert size <= MAX_BYTES, f"{directory}: {size / 2**20:.1f} MiB"
  shipped = json.loads((directory / "config.json").read_text())
  expected = SHIPPED[name].get_config().to_dict()
  # Through the typed sections, as loading reads them: a field added after the model was
  # trained is absent from its config.json and takes its default.
  for section, build in (("model", config_lib.model_config), ("optim", config_lib.optim_config),
                         ("data", config_lib.data_config)):
    assert build(shipped[section]) == build(expected[section]), section
  assert shipped["train"]["num_steps"] == expected["train"]["num_steps"]


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_draws_images(name):
  model = pretrained.load(PRETRAINED / name)
  assert model.step == json.loads((PRETRAINED / name / "config.json").read_text())[
      "train"]["num_steps"]
  rng = np.random.default_rng(0)
  frames = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
  cameras = np.array([[3.0, 0.0, 1.6, np.pi, -0.2], [0.0, 3.0, 1.6, -np.pi / 2, -0.2]],
                     np.float32)
  samples = model.predict(frames, cameras, cameras[:1], jax.random.key(0), samples=2)
  size = model.config.image_size
  assert samples.shape == (2, 1, size, size, 3)
  assert np.all(np.isfinite(samples))
  # Two prior samples are two different draws.
  assert not np.allclose(samples[0], samples[1])


def test_the_continued_reference_run_starts_from_the_shipped_model():
  """Its init_from names the shipped model, whose parameters fit the continued config's model
  (params_to_start_from raises naming each architecture field that differs)."""
  config = reference_continued.get_config()
  start = PRETRAINED.parent / config.train.init_from
  params = checkpoints.params_to_start_from(start, config)
  model = GQN(config_lib.model_config(config.model))
  wanted = jax.eval_shape(lambda: train_step.init_params(model, jax.random.key(0)))
  assert jax.tree.map(lambda x: x.shape, params) == jax.tree.map(lambda x: x.shape, wanted)
