"""The training loop: ``train_and_evaluate(config, workdir)``.

Data-parallel over all devices of all processes (``parallel``), resumable exactly
(``checkpoints``), logged to TensorBoard with images (``logging_utils``). The loop:

  restore the latest checkpoint of the workdir, or initialise from config.train.seed
  for each step: this process's batch -> global batch -> jitted step -> metrics to host
    stop on a non-finite loss (the last good checkpoint stays the latest)
    every log_every_steps: mean metrics, steps/s, scenes/s to TensorBoard and the progress bar
    every eval_every_steps: mean ELBO terms over eval_batches test batches, at sigma_final
    every image_every_steps: context views | query | reconstruction | prior samples
    every checkpoint_every_steps (and at eval steps when keeping the best, and at the end):
      asynchronous save of state, data-iterator state and config

Fields this loop reads beyond model/optim are documented in gqn_jax/configs/paper.py; a config
that lacks some gets paper.py's values (TRAIN_DEFAULTS, DATA_DEFAULTS).
"""

import dataclasses
import logging
import sys
import time
from typing import Any, Callable, Iterable, Mapping

from etils import epath
import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from gqn_jax import checkpoints
from gqn_jax import config as config_lib
from gqn_jax import logging_utils
from gqn_jax import parallel
from gqn_jax import train_step as ts
from gqn_jax.configs import paper
from gqn_jax.model import GQN

# The loop's fields and their defaults are those of the paper config, where each is
# documented; a config without some of them (an older file, say) gets these values.
_PAPER = paper.get_config()
TRAIN_DEFAULTS = _PAPER.train.to_dict()
# dataset and max_context_views have no default: every config names its data.
DATA_DEFAULTS = {name: value for name, value in _PAPER.data.to_dict().items()
                 if name not in ("dataset", "max_context_views")}


def with_training_fields(config):
  """Adds the loop's fields that ``config`` lacks, at their defaults, and returns it.

  Config files call it so that every field the loop reads can be set on the command line
  (``--config.train.eval_every_steps=500``); fields already there keep their values.
  """
  for section, defaults in (("train", TRAIN_DEFAULTS), ("data", DATA_DEFAULTS)):
    for name, value in defaults.items():
      if name not in config[section]:
        config[section][name] = value
  return config


class NonFiniteLossError(FloatingPointError):
  """The loss of a step was NaN or infinite; the run stopped before saving that state."""


@dataclasses.dataclass(frozen=True)
class Settings:
  """config.train and config.data fields the loop reads, defaults filled in, validated."""
  batch_size: int
  num_steps: int
  seed: int
  log_every_steps: int
  checkpoint_every_steps: int
  keep_checkpoints: int
  keep_best_checkpoint: bool
  eval_every_steps: int
  eval_batches: int
  eval_batch_size: int
  image_every_steps: int
  image_scenes: int
  prior_samples: int
  progress_bar: bool
  dataset: str
  max_context_views: int | None
  data_dir: str | None
  train_split: str
  eval_split: str
  worker_count: int


def settings(config) -> Settings:
  """Reads the loop's fields (defaults where missing); errors name the config field."""
  train = {k: config.get("train", {}).get(k, v) for k, v in TRAIN_DEFAULTS.items()}
  data = {k: config.get("data", {}).get(k, v) for k, v in DATA_DEFAULTS.items()}
  positive = ("batch_size", "num_steps", "log_every_steps", "checkpoint_every_steps",
              "keep_checkpoints", "eval_batches", "image_scenes", "prior_samples")
  for name in positive + ("eval_every_steps", "image_every_steps", "eval_batch_size", "seed"):
    value, least = train[name], 1 if name in positive else 0
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
      kind = "positive" if least else "non-negative"
      raise config_lib.ConfigError(f"config.train.{name} must be a {kind} integer, got {value!r}")
  if "dataset" not in config.get("data", {}):
    raise config_lib.ConfigError("config.data.dataset is missing: a released dataset name or "
                                 "generated_<name>")
  train["eval_batch_size"] = train["eval_batch_size"] or train["batch_size"]
  return Settings(**train, **data, dataset=config.data.dataset,
                  max_context_views=config.data.get("max_context_views"))


@dataclasses.dataclass
class Data:
  """Where batches come from. Each yields this process's rows of every global batch.

  ``train`` must be a grain dataset (its iterator state is checkpointed); ``eval`` is called
  for a fresh pass over the same evaluation batches; ``images`` is one batch of the scenes
  shown in pictures (process 0 only), or None.
  """
  train: Any
  eval: Callable[[], Iterable[Mapping[str, np.ndarray]]] | None
  images: Mapping[str, np.ndarray] | None


def make_data(s: Settings, model_cfg: config_lib.ModelConfig) -> Data:
  """Data from the prepared TFDS ``gqn`` dataset ``s.dataset`` (input_pipeline)."""
  from gqn_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  common = dict(data_dir=s.data_dir, image_size=model_cfg.image_size,
                max_context_views=s.max_context_views, pose_order=model_cfg.pose_order,
                seed=s.seed)
  train = input_pipeline.create_dataset(s.dataset, s.train_split, global_batch_size=s.batch_size,
                                        worker_count=s.worker_count, **common)
  evaluate = None
  if s.eval_every_steps:
    eval_dataset = input_pipeline.create_dataset(
        s.dataset, s.eval_split, global_batch_size=s.eval_batch_size, shuffle=False, **common)
    evaluate = lambda: _take(eval_dataset, s.eval_batches)
  images = None
  if s.image_every_steps and jax.process_index() == 0:
    # All context views, so that the picture shows the model at its best; this process only.
    picture_dataset = input_pipeline.create_dataset(
        s.dataset, s.eval_split, global_batch_size=s.image_scenes, shuffle=False,
        num_context_views=s.max_context_views, process_index=0, process_count=1, **common)
    images = next(iter(picture_dataset))
  _keep_tensorflow_off_accelerators()
  return Data(train=train, eval=evaluate, images=images)


def _take(dataset, count: int):
  iterator = iter(dataset)
  return [next(iterator) for _ in range(count)]


def _keep_tensorflow_off_accelerators():
  """TFDS may import TensorFlow; it must not take GPU memory that JAX needs."""
  if "tensorflow" in sys.modules:
    sys.modules["tensorflow"].config.set_visible_devices([], "GPU")


def make_eval_step(model: GQN, sigma: float, mesh):
  """(params, sharded batch, rng, batch index) -> mean ELBO terms over the global batch."""

  def per_device(params, batch, rng, index):
    size = batch["query_image"].shape[0]
    offset = jax.lax.axis_index(parallel.DATA_AXIS) * size
    noise = ts.latent_noise(jax.random.fold_in(rng, index), model.config, size, offset)
    terms = ts.elbo_terms(model, params, batch, sigma, noise)
    metrics = {"loss": jnp.mean(terms.loss), "nll": jnp.mean(terms.nll),
               "kl": jnp.mean(terms.kl)}
    return jax.lax.pmean(metrics, parallel.DATA_AXIS)

  return parallel.data_parallel(per_device, mesh, batch_argnums=(1,), num_args=4)


def make_render(model: GQN, samples: int, seed: int):
  """Jitted (params, batch, step) -> (reconstruction [B,H,W,3], prior samples [S,B,H,W,3]).

  The key is made inside from (seed, step): process 0 renders alone, so it may not use keys
  that live on the global mesh.
  """

  @jax.jit
  def render(params, batch, step):
    rng = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), 3), step)
    keys = jax.random.split(rng, samples + 1)
    variables = {"params": params}
    reconstruction = model.apply(
        variables, batch["context_images"], batch["context_poses"], batch["query_pose"],
        batch["query_image"], batch["context_mask"], method=GQN.reconstruct,
        rngs={"sample": keys[0]})
    priors = [model.apply(variables, batch["context_images"], batch["context_poses"],
                          batch["query_pose"], batch["context_mask"], method=GQN.generate,
                          rngs={"sample": key}) for key in keys[1:]]
    return reconstruction, jnp.stack(priors)

  return render


def _scalars(prefix: str, metrics: Mapping[str, Any]) -> dict[str, float]:
  out = {}
  for name, value in metrics.items():
    value = np.asarray(value)
    if value.ndim == 0:
      out[f"{prefix}/{name}"] = float(value)
    else:  # kl_per_step: one curve per generator step, numbered from 1.
      width = len(str(value.size))
      out.update({f"{prefix}/{name}/{i + 1:0{width}d}": float(v) for i, v in enumerate(value)})
  return out


def _mean(history: list[Mapping[str, Any]]) -> dict[str, np.ndarray]:
  return {k: np.mean([np.asarray(m[k]) for m in history], axis=0) for k in history[0]}


class _Loop:
  """State shared by the steps of one run (kept out of train_and_evaluate for length)."""

  def __init__(self, config, workdir, s: Settings, model: GQN, mesh, data: Data):
    self.config, self.s, self.model, self.mesh, self.data = config, s, model, mesh, data
    self.workdir = epath.Path(workdir)
    self.is_main = jax.process_index() == 0
    self.writer = logging_utils.SummaryWriter(self.workdir / "tensorboard", self.is_main)
    self.last_image = None

  def evaluate(self, eval_step, params, rng) -> dict[str, float]:
    results = [jax.device_get(eval_step(params, parallel.shard_batch(batch, self.mesh), rng, i))
               for i, batch in enumerate(self.data.eval())]
    return {k: float(v) for k, v in _mean(results).items()}

  def images(self, render, state, step: int) -> None:
    if not self.is_main or self.data.images is None:
      return
    batch = self.data.images
    # A host copy of the replicated parameters, rendered on this process's first device only,
    # so that no other process has to take part.
    device = jax.local_devices()[0]
    params = jax.device_put(jax.device_get(state.params), device)
    with jax.set_mesh(parallel.data_mesh([device])):  # jit must not span the global mesh.
      reconstruction, priors = jax.device_get(render(
          params, jax.device_put(dict(batch), device), step))
    columns = [("reconstruction", reconstruction)] + [
        (f"prior sample {i + 1}", prior) for i, prior in enumerate(priors)]
    grid = logging_utils.scene_grid(batch["context_images"], batch["context_mask"],
                                    batch["query_image"], columns)
    self.writer.image(step, "images/context|query|reconstruction|prior_samples", grid)
    self.last_image = logging_utils.write_png(self.workdir / "images" / f"step_{step:08d}.png",
                                              grid)


def train_and_evaluate(config, workdir, data: Data | None = None) -> dict[str, Any]:
  """Trains ``config`` in ``workdir`` until config.train.num_steps, resuming if it can.

  Args:
    config: a ConfigDict with model, optim, train and data sections (gqn_jax/configs).
    workdir: where config.json, checkpoints/, tensorboard/ and images/ go.
    data: batches to use instead of the dataset of config.data (tests feed synthetic ones).

  Returns:
    {'step', 'state' (the final TrainState), 'train' (last logged means), 'eval' (last
    evaluation), 'image' (path of the last picture), 'steps_per_second' (last interval's)}.

  Raises:
    NonFiniteLossError: naming the step whose loss was not finite.
    checkpoints.IncompatibleCheckpointError: the workdir's checkpoint needs another model.
  """
  model_cfg = config_lib.model_config(config.model)
  optim_cfg = config_lib.optim_config(config.optim)
  s = settings(config)
  mesh = parallel.data_mesh()
  parallel.check_batch_size(s.batch_size, mesh)
  if s.eval_every_steps:
    parallel.check_batch_size(s.eval_batch_size, mesh, "config.train.eval_batch_size")
  model = GQN(model_cfg)
  with jax.set_mesh(mesh):
    data = data or make_data(s, model_cfg)
    loop = _Loop(config, workdir, s, model, mesh, data)
    checkpointer = checkpoints.Checkpointer(workdir, max_to_keep=s.keep_checkpoints,
                                            keep_best=s.keep_best_checkpoint)
    try:
      return _run(loop, checkpointer, optim_cfg)
    finally:
      checkpointer.wait_until_finished()
      checkpointer.close()
      loop.writer.close()


def _run(loop: _Loop, checkpointer: checkpoints.Checkpointer, optim_cfg) -> dict[str, Any]:
  s, model, mesh, config = loop.s, loop.model, loop.mesh, loop.config
  replicated = parallel.replicated(mesh)
  init_rng, train_rng, eval_rng = jax.jit(
      lambda: tuple(jax.random.split(jax.random.key(s.seed), 3)), out_shardings=replicated)()
  train_iterator = iter(loop.data.train)
  latest = checkpointer.latest_step()
  if latest is None:
    state = jax.jit(lambda rng: ts.create_train_state(model, optim_cfg, rng),
                    out_shardings=replicated)(init_rng)
  else:
    state = checkpointer.restore(latest, checkpoints.abstract_state(model, optim_cfg, replicated),
                                 config, train_iterator)
    logging.info("restored %s/%d", checkpointer.directory, latest)
  checkpoints.write_config(loop.workdir, config)
  start = int(jax.device_get(state.step))
  step_fn = parallel.train_step(model, optim_cfg, mesh)
  eval_step = (make_eval_step(model, optim_cfg.sigma_final, mesh)
               if s.eval_every_steps and loop.data.eval else None)
  render = (make_render(model, s.prior_samples, s.seed)
            if s.image_every_steps and loop.data.images is not None else None)
  result = {"step": start, "train": None, "eval": None, "image": None,
            "steps_per_second": None, "state": state}
  saved = latest
  history = []
  progress = tqdm.tqdm(total=s.num_steps, initial=start, unit="step", dynamic_ncols=True,
                       disable=not (loop.is_main and s.progress_bar), desc="train")
  # Rates count the time spent reading batches and stepping only: not the first step (it
  # compiles), evaluations, pictures or checkpoints.
  interval_steps, interval_seconds = 0, 0.0
  try:
    for step in range(start, s.num_steps):
      began = time.perf_counter()
      batch = parallel.shard_batch(next(train_iterator), mesh)
      state, metrics = step_fn(state, batch, train_rng)
      metrics = jax.device_get(metrics)  # also the point where this step has finished.
      if step > start:
        interval_steps += 1
        interval_seconds += time.perf_counter() - began
      done = step + 1
      if not np.isfinite(metrics["loss"]):
        checkpointer.wait_until_finished()
        where = (f"the last good checkpoint is step {saved}, in {checkpointer.directory}"
                 if saved is not None else "no checkpoint was written")
        raise NonFiniteLossError(
            f"non-finite loss ({metrics['loss']}) at step {done} (the update from step "
            f"{step}'s state); training stopped and this state was not saved; {where}")
      history.append(metrics)
      progress.update(1)
      last = done == s.num_steps
      if done % s.log_every_steps == 0 or last:
        means = _mean(history)
        history = []
        rates = {}
        if interval_steps and interval_seconds > 0:
          steps_per_second = interval_steps / interval_seconds
          rates = {"perf/steps_per_second": steps_per_second,
                   "perf/scenes_per_second": steps_per_second * s.batch_size}
          result["steps_per_second"] = steps_per_second
        interval_steps, interval_seconds = 0, 0.0
        loop.writer.scalars(done, {**_scalars("train", means), **rates})
        result["train"] = {k: v.tolist() for k, v in means.items()}
        progress.set_postfix(loss=f"{float(means['loss']):.1f}",
                             scenes_per_s=f"{rates.get('perf/scenes_per_second', 0):.1f}")
        logging.info("step %d: loss %.2f nll %.2f kl %.3f", done, means["loss"], means["nll"],
                     means["kl"])
      eval_loss = None
      if eval_step is not None and (done % s.eval_every_steps == 0 or last):
        result["eval"] = loop.evaluate(eval_step, state.params, eval_rng)
        eval_loss = result["eval"]["loss"]
        loop.writer.scalars(done, _scalars("eval", result["eval"]))
        logging.info("step %d: eval loss %.2f", done, eval_loss)
      if render is not None and (done % s.image_every_steps == 0 or last):
        loop.images(render, state, done)
        result["image"] = str(loop.last_image) if loop.last_image else None
      preempted = checkpointer.reached_preemption(done)
      if (done % s.checkpoint_every_steps == 0 or last or preempted
          or (eval_loss is not None and s.keep_best_checkpoint)):
        checkpointer.save(done, state, config, train_iterator, eval_loss)
        saved = done
      loop.writer.flush()
      result["step"], result["state"] = done, state
      if preempted:
        logging.warning("preemption signalled: saved step %d and stopped", done)
        break
  finally:
    progress.close()
  return result
