"""The training loop: ``train_and_evaluate(config, workdir)``.

Data-parallel over all devices of all processes (``parallel``), resumable exactly
(``checkpoints``), logged to TensorBoard with images (``logging_utils``). The loop:

  restore the latest checkpoint of the workdir, or initialise from config.train.seed
  for each step: this process's batch -> global batch -> the train step program
    metrics come to the host at log steps and before the state is read (evaluation,
    pictures, checkpoints): there the run stops on a non-finite loss, naming its step
    (the last good checkpoint stays the latest)
    every log_every_steps: mean metrics, steps/s, scenes/s to TensorBoard and the progress bar
    every eval_every_steps: mean ELBO terms over eval_batches test batches, at sigma_final
    every image_every_steps: context views | query | reconstruction | prior samples
    every checkpoint_every_steps (and at eval steps when keeping the best, and at the end):
      asynchronous save of state, data-iterator state and config

The fields this loop reads are config.train and config.data: ``config.TrainConfig`` and
``config.DataConfig``, where each is documented with its default.
"""

import contextlib
import dataclasses
import logging
import signal
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
from gqn_jax.model import GQN

class NonFiniteLossError(FloatingPointError):
  """The loss of a step was NaN or infinite; the run stopped before saving that state."""


# gqn-train's exit status after a SIGTERM: the step was saved and the run stopped early.
# 128 + SIGTERM, as a shell reports a process killed by it, so that schedulers that restart
# failed jobs (Kubernetes, SLURM --requeue, retry loops) restart this one; rerunning the same
# command resumes it exactly.
PREEMPTED_EXIT_CODE = 128 + signal.SIGTERM


@contextlib.contextmanager
def _sigterm_requests_a_stop():
  """A SIGTERM sets the flag yielded (a list; non-empty once signalled) instead of killing.

  One process only: a multi-process run is stopped by JAX's preemption service, which hears
  SIGTERM itself and agrees on one step for all processes (``reached_preemption``).
  """
  received = []
  if jax.process_count() > 1 or not _in_main_thread():
    yield received
    return
  previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
  try:
    yield received
  finally:
    signal.signal(signal.SIGTERM, previous)


def _in_main_thread() -> bool:
  import threading  # pylint: disable=g-import-not-at-top
  return threading.current_thread() is threading.main_thread()


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


def make_data(train_cfg: config_lib.TrainConfig, data_cfg: config_lib.DataConfig,
              model_cfg: config_lib.ModelConfig) -> Data:
  """Data from the prepared TFDS ``gqn`` dataset ``data_cfg.dataset`` (input_pipeline)."""
  from gqn_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  common = dict(data_dir=data_cfg.data_dir, image_size=model_cfg.image_size,
                max_context_views=data_cfg.max_context_views, pose_order=model_cfg.pose_order,
                seed=train_cfg.seed)
  train = input_pipeline.create_dataset(
      data_cfg.dataset, data_cfg.train_split, global_batch_size=train_cfg.batch_size,
      worker_count=data_cfg.worker_count, **common)
  evaluate = None
  if train_cfg.eval_every_steps:
    eval_dataset = input_pipeline.create_dataset(
        data_cfg.dataset, data_cfg.eval_split, global_batch_size=train_cfg.eval_batch_size,
        shuffle=False, **common)
    evaluate = lambda: _take(eval_dataset, train_cfg.eval_batches)
  images = None
  if train_cfg.image_every_steps and jax.process_index() == 0:
    # All context views, so that the picture shows the model at its best; this process only.
    picture_dataset = input_pipeline.create_dataset(
        data_cfg.dataset, data_cfg.eval_split, global_batch_size=train_cfg.image_scenes,
        shuffle=False, num_context_views=data_cfg.max_context_views, process_index=0,
        process_count=1, **common)
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


def make_render(model: GQN, samples: int, seed: int):
  """Jitted (params, batch, step) -> (reconstruction [B,H,W,3], prior samples [S,B,H,W,3]).

  r is computed once and rendered ``samples`` times (``GQN.render``). The key is made inside
  from (seed, step): process 0 renders alone, so it may not use keys that live on the global
  mesh.
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
    r = model.apply(variables, batch["context_images"], batch["context_poses"],
                    batch["context_mask"], method=GQN.represent)
    priors = [model.apply(variables, r, batch["query_pose"], method=GQN.render,
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

  def __init__(self, config, workdir, train_cfg: config_lib.TrainConfig, model: GQN, mesh,
               data: Data):
    self.config, self.train_cfg, self.model = config, train_cfg, model
    self.mesh, self.data = mesh, data
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
    evaluation), 'image' (path of the last picture), 'steps_per_second' (last interval's),
    'preempted' (True when a SIGTERM stopped the run early, after saving 'step')}.

  A SIGTERM (preemption) lets the step under way finish, saves it, waits for the save and
  returns; rerunning resumes bit-identically (docs/faults.md).

  Raises:
    NonFiniteLossError: naming the step whose loss was not finite.
    checkpoints.IncompatibleCheckpointError: the workdir's checkpoint needs another model.
    checkpoints.CorruptCheckpointError: no checkpoint of the workdir can be read back.
    checkpoints.CheckpointSaveError: a save failed (a full disk, say), naming the step.
  """
  model_cfg = config_lib.model_config(config.model)
  optim_cfg = config_lib.optim_config(config.optim)
  train_cfg = config_lib.train_config(config.get("train", {}))
  data_cfg = config_lib.data_config(config.get("data", {}))
  mesh = parallel.data_mesh()
  parallel.check_batch_size(train_cfg.batch_size, mesh)
  if train_cfg.eval_every_steps:
    parallel.check_batch_size(train_cfg.eval_batch_size, mesh, "config.train.eval_batch_size")
  model = GQN(model_cfg)
  with jax.set_mesh(mesh):
    data = data or make_data(train_cfg, data_cfg, model_cfg)
    loop = _Loop(config, workdir, train_cfg, model, mesh, data)
    checkpointer = checkpoints.Checkpointer(workdir, max_to_keep=train_cfg.keep_checkpoints,
                                            keep_best=train_cfg.keep_best_checkpoint,
                                            keep_every=train_cfg.keep_checkpoint_every_steps)
    try:
      with _sigterm_requests_a_stop() as sigterm:
        return _run(loop, checkpointer, optim_cfg, sigterm)
    finally:
      checkpointer.wait_until_finished()
      checkpointer.close()
      loop.writer.close()


def _run(loop: _Loop, checkpointer: checkpoints.Checkpointer, optim_cfg,
         sigterm: list) -> dict[str, Any]:
  train_cfg, model, mesh, config = loop.train_cfg, loop.model, loop.mesh, loop.config
  replicated = parallel.replicated(mesh)
  init_rng, train_rng, eval_rng = jax.jit(
      lambda: tuple(jax.random.split(jax.random.key(train_cfg.seed), 3)),
      out_shardings=replicated)()
  train_iterator = iter(loop.data.train)
  # The newest step that reads back; newer unreadable ones are named and moved aside.
  state, latest = checkpointer.restore_latest(
      checkpoints.abstract_state(model, optim_cfg, replicated), config, train_iterator)
  if latest is None:
    params = None
    if train_cfg.init_from:
      params = jax.device_put(
          checkpoints.params_to_start_from(train_cfg.init_from, config), replicated)
    state = jax.jit(lambda rng, params: ts.create_train_state(model, optim_cfg, rng, params),
                    out_shardings=replicated)(init_rng, params)
  else:
    logging.info("restored %s/%d", checkpointer.directory, latest)
  checkpoints.write_config(loop.workdir, config)
  start = int(jax.device_get(state.step))
  step_fn = ts.make_train_step(model, optim_cfg, mesh)
  eval_step = (ts.make_eval_step(model, optim_cfg.sigma_final, mesh)
               if train_cfg.eval_every_steps and loop.data.eval else None)
  render = (make_render(model, train_cfg.prior_samples, train_cfg.seed)
            if train_cfg.image_every_steps and loop.data.images is not None else None)
  result = {"step": start, "train": None, "eval": None, "image": None,
            "steps_per_second": None, "state": state, "preempted": False}
  saved = latest
  pending = []  # this step's and earlier steps' metrics, still on the devices.
  history = []  # fetched metrics of the steps since the last log.
  progress = tqdm.tqdm(total=train_cfg.num_steps, initial=start, unit="step", dynamic_ncols=True,
                       disable=not (loop.is_main and train_cfg.progress_bar), desc="train")

  def fetch(done: int) -> None:
    """Brings the pending metrics to the host (a device sync, so only when they are needed:
    at log steps and before anything reads the state), stopping on a non-finite loss."""
    fetched = jax.device_get(pending)
    pending.clear()
    for bad, metrics in enumerate(fetched, start=done - len(fetched) + 1):
      if not np.isfinite(metrics["loss"]):
        checkpointer.wait_until_finished()
        where = (f"the last good checkpoint is step {saved}, in {checkpointer.directory}"
                 if saved is not None else "no checkpoint was written")
        raise NonFiniteLossError(
            f"non-finite loss ({metrics['loss']}) at step {bad} (the update from step "
            f"{bad - 1}'s state); training stopped and this state was not saved; {where}")
    history.extend(fetched)

  # Rates count the time spent reading batches and stepping only: not the first step (it
  # compiles), evaluations, pictures or checkpoints. Each of those ends in a sync, after which
  # the interval starts afresh.
  interval_steps, interval_began = 0, time.perf_counter()
  try:
    for step in range(start, train_cfg.num_steps):
      batch = parallel.shard_batch(next(train_iterator), mesh)
      state, metrics = step_fn(state, batch, train_rng)
      pending.append(metrics)
      progress.update(1)
      done = step + 1
      last = done == train_cfg.num_steps
      log = done % train_cfg.log_every_steps == 0 or last
      evaluate = eval_step is not None and (done % train_cfg.eval_every_steps == 0 or last)
      picture = render is not None and (done % train_cfg.image_every_steps == 0 or last)
      preempted = bool(sigterm) or checkpointer.reached_preemption(done)
      save = (done % train_cfg.checkpoint_every_steps == 0 or last or preempted
              or (evaluate and train_cfg.keep_best_checkpoint))
      if step == start or log or evaluate or picture or save:
        fetch(done)
      if step > start:
        interval_steps += 1
      if log:
        means = _mean(history)
        history.clear()
        rates = {}
        interval_seconds = time.perf_counter() - interval_began
        if interval_steps and interval_seconds > 0:
          steps_per_second = interval_steps / interval_seconds
          rates = {"perf/steps_per_second": steps_per_second,
                   "perf/scenes_per_second": steps_per_second * train_cfg.batch_size}
          result["steps_per_second"] = steps_per_second
        loop.writer.scalars(done, {**_scalars("train", means), **rates})
        result["train"] = {k: v.tolist() for k, v in means.items()}
        progress.set_postfix(loss=f"{float(means['loss']):.1f}",
                             scenes_per_s=f"{rates.get('perf/scenes_per_second', 0):.1f}")
        logging.info("step %d: loss %.2f nll %.2f kl %.3f", done, means["loss"], means["nll"],
                     means["kl"])
      eval_loss = None
      if evaluate:
        result["eval"] = loop.evaluate(eval_step, state.params, eval_rng)
        eval_loss = result["eval"]["loss"]
        loop.writer.scalars(done, _scalars("eval", result["eval"]))
        logging.info("step %d: eval loss %.2f", done, eval_loss)
      if picture:
        loop.images(render, state, done)
        result["image"] = str(loop.last_image) if loop.last_image else None
      if save:
        checkpointer.save(done, state, config, train_iterator, eval_loss)
        saved = done
      loop.writer.flush()
      result["step"], result["state"] = done, state
      if preempted:
        checkpointer.wait_until_finished()  # the saved step must be complete before exiting.
        logging.warning("preemption signalled: saved step %d and stopped", done)
        result["preempted"] = not last
        break
      if step == start or log or evaluate or picture or save:
        interval_steps, interval_began = 0, time.perf_counter()
  finally:
    progress.close()
  return result
