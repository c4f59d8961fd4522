"""Checkpoints of a training run, with orbax: save, keep, restore, and load for inference.

A run's workdir holds ``config.json`` (the resolved config) and ``checkpoints/<step>/`` with
three items per step:

* ``state``: the TrainState (step, params, optimizer state), as an orbax PyTree;
* ``data``: each process's grain iterator state (``process_<i>-of-<n>.json``), so that a
  resumed run reads exactly the batches the uninterrupted run would have read;
* ``config``: the config the step was written with, checked against the resuming run's;
* ``checksums``: a checksum of every array of the state, computed on the devices before the
  save, so that a step whose files were damaged afterwards (bytes flipped on disk: zstd and
  OCDBT carry no checksum of their own, and such a step restores without error) is caught.

Saves are asynchronous (the arrays are copied to host before ``save`` returns, so the next
step may donate them); an interrupted save leaves only a temporary directory, which the next
run deletes, so the latest *complete* step is always the one restored. The last
``max_to_keep`` steps are kept, with ``keep_best`` the step of lowest eval loss, and with
``keep_every`` each step that is a multiple of it (a run's curve against training time is
scored from those, experiments/held_out_curve.py).

Faults (docs/faults.md): a step that cannot be read back (truncated or flipped files) is named
with the reason, moved to ``<workdir>/corrupt_checkpoints/<step>`` and the next older step is
restored (``restore_latest``); when none restores nothing is moved and CorruptCheckpointError
says what to do. A save that fails (e.g. a full disk) raises one CheckpointSaveError naming the
workdir, the step and the reason, and leaves the earlier steps as they were.

For evaluation and figures, the one loader (``load_for_inference`` is its (config, params))::

  run = checkpoints.load("runs/rooms")                  # latest step: run.params, run.step, ...
  config, params = checkpoints.load_for_inference("runs/rooms", step=20000)
"""

import dataclasses
import errno
import json
import logging
import os
import sys
import traceback
from typing import Any, Mapping

from etils import epath
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as preservation

from gqn_jax import config as config_lib
from gqn_jax import train_step
from gqn_jax.model import GQN

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.json"
CORRUPT_DIR = "corrupt_checkpoints"  # under the workdir: steps that could not be read back.
ITEMS = ("state", "data", "config", "checksums")
EVAL_METRIC = "eval_loss"

# Fields that fix the parameter tree's shapes or what the parameters mean. A checkpoint
# written with other values cannot be resumed; all other fields (learning rate, batch size,
# intervals, compute dtype, remat, ...) may change between runs.
ARCHITECTURE_FIELDS = (
    "model.image_size", "model.representation", "model.r_channels", "model.steps",
    "model.hidden_channels", "model.canvas_channels", "model.latent_channels",
    "model.kernel_size", "model.share_cores", "model.pose_order", "model.pose_rays",
    "model.view_attention", "model.attention_over", "model.r_pixels",
)
_MODEL_DEFAULTS = {field.name: field.default
                   for field in dataclasses.fields(config_lib.ModelConfig)}
# Clipping adds a level to the optimizer state's tree: on or off must match, not the value.
CLIPPING_FIELD = "optim.grad_clip_norm"


class CheckpointNotFoundError(FileNotFoundError):
  """A workdir (or step) without a checkpoint."""


class IncompatibleCheckpointError(ValueError):
  """A checkpoint written with a config whose parameters cannot be loaded into this one's."""


class CorruptCheckpointError(RuntimeError):
  """A checkpoint step whose files cannot be read back, or read back other values than saved."""


class CheckpointSaveError(OSError):
  """A save that failed (a full disk, say); the steps saved before it are left as they were."""


# Multiplying the k-th word by an odd number makes any change of one word change the sum
# (mod 2^32); 2654435761 (Knuth's multiplicative hash) spreads nearby positions apart.
_CHECKSUM_MULTIPLIER = 2654435761


def _leaf_checksum(x: jax.Array) -> jax.Array:
  """A uint32 of all the bits of ``x``: the sum of its words weighted by odd position hashes."""
  if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  x = x.reshape(-1)
  if x.dtype == jnp.bool_:
    words = x.astype(jnp.uint32)
  elif x.dtype.itemsize >= 4:
    words = jax.lax.bitcast_convert_type(x, jnp.uint32).reshape(-1)
  else:
    unsigned = {1: jnp.uint8, 2: jnp.uint16}[x.dtype.itemsize]
    words = jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32)
  weights = jnp.arange(words.size, dtype=jnp.uint32) * jnp.uint32(_CHECKSUM_MULTIPLIER)
  return jnp.sum(words * (weights | jnp.uint32(1)), dtype=jnp.uint32)


_checksum_tree = jax.jit(lambda tree: jax.tree.map(_leaf_checksum, tree))


def checksums(tree: Mapping[str, Any]) -> dict[str, int]:
  """{path of each array: its checksum}; ``tree`` is a dict such as {'params': ...}."""
  values = jax.device_get(_checksum_tree(tree))
  return {jax.tree_util.keystr(path): int(value)
          for path, value in jax.tree_util.tree_flatten_with_path(values)[0]}


def _state_tree(state) -> Mapping[str, Any]:
  """The saved state as a dict, so that its checksums' paths start with ['params'] whether it
  is a TrainState or an exported {'params': ...} (gqn_jax/pretrained.py)."""
  if isinstance(state, Mapping):
    return state
  return {"step": state.step, "params": state.params, "opt_state": state.opt_state}


def _reason(error: BaseException) -> str:
  """What went wrong, in words: the OS error anywhere in the chain, else the error's first line.

  orbax wraps the errors of its writing threads (and TensorStore reports its own), so a full
  disk may arrive as an OSError several causes deep or only as text.
  """
  seen = error
  while seen is not None:
    if isinstance(seen, OSError) and seen.errno is not None:
      return f"{os.strerror(seen.errno).lower()} ({errno.errorcode.get(seen.errno, seen.errno)})"
    seen = seen.__cause__ or seen.__context__
  text = str(error)
  if "no space left" in text.lower() or "ENOSPC" in text:
    return "no space left on device (ENOSPC)"
  innermost = error  # orbax's own wrapper says only 'Encountered error while reading ...'.
  while (innermost.__cause__ or innermost.__context__) is not None:
    innermost = innermost.__cause__ or innermost.__context__
  text = str(innermost).strip()
  first = text.splitlines()[0].split(" [tensorstore_spec=")[0] if text else ""
  return f"{type(innermost).__name__}: {first[:400]}"


# How a full disk shows in orbax's threads: an OSError, or TensorStore's RESOURCE_EXHAUSTED text.
_FULL_DISK_MARKERS = ("No space left on device", "[Errno 28]", "os_error_code='28'")


class _FullDiskNoise(logging.Filter):
  """Drops orbax's and asyncio's own reports of a save that failed on a full disk.

  Each of orbax's writing threads logs the failure with its traceback, asyncio then reports
  every write task whose error nobody retrieved: some 70 tracebacks for one full disk. The
  CheckpointSaveError says it once, with the step and the workdir. Other failures keep their
  logs (they may be bugs worth the traceback).
  """

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno < logging.ERROR or (
        "/orbax/" not in record.pathname and record.name != "asyncio"):
      return True
    text = record.getMessage()
    if record.exc_info:
      text += "".join(traceback.format_exception(*record.exc_info))
    return not any(marker in text for marker in _FULL_DISK_MARKERS)


def _closed_loop_error(value) -> bool:
  return isinstance(value, RuntimeError) and str(value) == "Event loop is closed"


def _quiet_closed_loop_reports() -> None:
  """Makes sys.excepthook and sys.unraisablehook skip TensorStore's reports of a read or write
  that completed after a failed restore or save had closed orbax's event loop: 'RuntimeError:
  Event loop is closed', one traceback per pending operation, printed from TensorStore's
  threads (nothing in this project raises it). The failure itself is reported once, by this
  module's errors. Stays for the process: the reports may come after the Checkpointer closed."""
  if getattr(sys.excepthook, "quiet_closed_loop", False):
    return
  excepthook, unraisablehook = sys.excepthook, sys.unraisablehook

  def quiet_excepthook(kind, value, trace):
    if not _closed_loop_error(value):
      excepthook(kind, value, trace)

  def quiet_unraisablehook(unraisable):
    if not _closed_loop_error(unraisable.exc_value):
      unraisablehook(unraisable)

  quiet_excepthook.quiet_closed_loop = True
  sys.excepthook, sys.unraisablehook = quiet_excepthook, quiet_unraisablehook


def _is_shape_error(error: BaseException) -> bool:
  """orbax's words for an array or tree that does not fit the target (not a damaged file)."""
  text = str(error)
  return isinstance(error, ValueError) and (
      "not compatible with the stored shape" in text or "tree structure" in text.lower())


def _all_processes(ok: bool) -> bool:
  """True on every process when ``ok`` is True on every process (a collective)."""
  if jax.process_count() == 1:
    return ok
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return bool(np.all(multihost_utils.process_allgather(np.asarray(ok))))


def _lookup(config: Mapping[str, Any], dotted: str):
  """A config's value of ``section.field``; a model field that a config written before it
  existed lacks reads as its default (the model such a config describes)."""
  section, field = dotted.split(".")
  value = config.get(section, {}).get(field, "<unset>")
  if value == "<unset>" and section == "model" and field in _MODEL_DEFAULTS:
    return _MODEL_DEFAULTS[field]
  return value


def config_mismatches(saved: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
  """Lines naming each architecture field on which ``saved`` and ``config`` differ."""
  lines = []
  for name in ARCHITECTURE_FIELDS:
    old, new = _lookup(saved, name), _lookup(config, name)
    if old != new:
      lines.append(f"config.{name}: checkpoint {old!r}, this run {new!r}")
  old, new = _lookup(saved, CLIPPING_FIELD), _lookup(config, CLIPPING_FIELD)
  clipped = lambda value: isinstance(value, (int, float)) and value > 0
  if clipped(old) != clipped(new):
    lines.append(f"config.{CLIPPING_FIELD}: checkpoint {old!r}, this run {new!r} (clipping on "
                 f"or off changes the optimizer state)")
  return lines


def config_to_dict(config) -> dict[str, Any]:
  """A JSON-able dict of a ConfigDict (or a dict)."""
  if isinstance(config, ml_collections.ConfigDict):
    return json.loads(config.to_json_best_effort())
  return json.loads(json.dumps(dict(config), default=str))


def write_config(workdir, config) -> epath.Path:
  """Writes the resolved config to ``<workdir>/config.json`` (process 0 only)."""
  path = epath.Path(workdir) / CONFIG_FILE
  if jax.process_index() == 0:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config_to_dict(config), indent=2, sort_keys=True) + "\n")
  return path


def _absolute(path) -> epath.Path:
  """orbax (tensorstore) needs absolute paths; URLs such as gs://... are left as they are."""
  return epath.Path(path if "://" in str(path) else os.path.abspath(path))


def _abstract(tree, sharding):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


class Checkpointer:
  """The checkpoints of one workdir: an orbax CheckpointManager and the rules above."""

  def __init__(self, workdir, *, max_to_keep: int = 3, keep_best: bool = False,
               keep_every: int = 0, async_save: bool = True, read_only: bool = False):
    if max_to_keep < 1:
      raise ValueError(f"max_to_keep must be at least 1, got {max_to_keep}")
    if keep_every < 0:
      raise ValueError(f"keep_every must be >= 0 (0: none), got {keep_every}")
    self.workdir = _absolute(workdir)
    self.directory = self.workdir / CHECKPOINT_DIR
    self._saving = None   # the step of the save in flight, to name it if it fails.
    self._failed = False  # a save failed and was reported; later waits stay quiet.
    self._noise = None
    _quiet_closed_loop_reports()
    if not read_only:  # until close(): a full disk is reported once, by CheckpointSaveError.
      self._noise = _FullDiskNoise()
      for name in ("absl", "asyncio"):
        logging.getLogger(name).addFilter(self._noise)
    policies = [preservation.LatestN(max_to_keep)]
    if keep_best:
      # reverse=True sorts the losses from high to low, so the lowest is the one kept.
      policies.append(preservation.BestN(
          get_metric_fn=lambda metrics: metrics[EVAL_METRIC], reverse=True, n=1,
          keep_checkpoints_without_metrics=False))
    if keep_every:
      policies.append(preservation.EveryNSteps(interval_steps=keep_every))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=None if read_only else preservation.AnyPreservationPolicy(policies),
        enable_async_checkpointing=async_save, cleanup_tmp_directories=not read_only,
        read_only=read_only, create=not read_only)
    self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, step: int, state, config, data_iterator=None,
           eval_loss: float | None = None) -> bool:
    """Starts an asynchronous save of ``state`` (whose ``step`` field equals ``step``).

    Raises CheckpointSaveError when this save, or the previous one still being written, fails.
    """
    self.wait_until_finished()  # orbax waits for the previous save too; this names its step.
    items = dict(state=ocp.args.PyTreeSave(state),
                 config=ocp.args.JsonSave(config_to_dict(config)),
                 checksums=ocp.args.JsonSave(checksums(_state_tree(state))))
    if data_iterator is not None:
      import grain  # pylint: disable=g-import-not-at-top
      items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    metrics = None if eval_loss is None else {EVAL_METRIC: float(eval_loss)}
    self._saving = step
    try:
      return self.manager.save(step, args=ocp.args.Composite(**items), metrics=metrics,
                               force=True)
    except Exception as error:  # pylint: disable=broad-except
      raise self._save_error(step, error) from error

  def _save_error(self, step: int | None, error: BaseException) -> "CheckpointSaveError":
    """One error naming the workdir, the step and the reason, and what is still there."""
    step = "(unknown)" if step is None else step
    self._saving = None
    self._failed = True
    self.manager.reload()  # the failed step is not among them: orbax lists committed steps.
    kept = sorted(self.all_steps())
    kept_text = (f"the earlier checkpoints (steps {kept}) are intact and a rerun resumes from "
                 f"step {kept[-1]}" if kept else "no earlier checkpoint exists")
    return CheckpointSaveError(
        f"saving checkpoint step {step} in workdir {self.workdir} failed: {_reason(error)}. "
        f"Step {step} was not completed and will not be restored; {kept_text}. Free space "
        f"under {self.workdir} (or pass another --workdir) and rerun the same command.")

  def saved_config(self, step: int) -> dict[str, Any]:
    restored = self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return dict(restored.config)

  def _corrupt(self, step: int, what: str, error: BaseException) -> CorruptCheckpointError:
    return CorruptCheckpointError(
        f"checkpoint {self.directory}/{step} cannot be read: {what}: {_reason(error)}")

  def check_compatible(self, step: int, config) -> None:
    """Raises IncompatibleCheckpointError naming every architecture field that differs."""
    try:
      saved = self.saved_config(step)
    except Exception as error:  # pylint: disable=broad-except
      raise self._corrupt(step, "its config", error) from error
    mismatches = config_mismatches(saved, config_to_dict(config))
    if mismatches:
      raise IncompatibleCheckpointError(
          f"checkpoint {self.directory}/{step} was written with a config incompatible with "
          f"this run's:\n  " + "\n  ".join(mismatches) + "\nUse another --workdir, or the "
          f"checkpoint's values (its config is in {self.workdir / CONFIG_FILE}).")

  def restore(self, step: int, abstract_state, config, data_iterator=None):
    """The state at ``step``, placed as ``abstract_state``'s shardings say (any device count).

    ``abstract_state`` is a pytree of ``jax.ShapeDtypeStruct`` with shardings; ``config`` is
    this run's, checked first. ``data_iterator``, if given, continues where the run stopped.

    Raises:
      IncompatibleCheckpointError: the step was written for another model.
      CorruptCheckpointError: its files cannot be read, or hold other values than were saved.
    """
    self.check_compatible(step, config)
    args = ocp.args.PyTreeRestore(
        item=abstract_state, restore_args=ocp.checkpoint_utils.construct_restore_args(
            abstract_state))
    try:
      state = self.manager.restore(step, args=ocp.args.Composite(state=args)).state
    except Exception as error:  # pylint: disable=broad-except
      if _is_shape_error(error):  # e.g. a shape that the config check could not foresee.
        raise IncompatibleCheckpointError(
            f"checkpoint {self.directory}/{step} does not fit this run's state: "
            f"{error}") from None
      raise self._corrupt(step, "its state", error) from error
    self.verify(step, _state_tree(state))
    if data_iterator is not None:
      try:
        self._restore_data(step, data_iterator, int(state.step))
      except (OSError, ValueError) as error:
        raise self._corrupt(step, "its data-iterator state", error) from error
    return state

  def verify(self, step: int, tree: Mapping[str, Any]) -> None:
    """Raises CorruptCheckpointError if an array of ``tree`` differs from what was saved.

    ``tree`` is {'step', 'params', 'opt_state'} or part of it; steps written before checksums
    were saved are not checked.
    """
    if not (self.directory / str(step) / "checksums").exists():
      return
    try:
      saved = dict(self.manager.restore(
          step, args=ocp.args.Composite(checksums=ocp.args.JsonRestore())).checksums)
    except Exception as error:  # pylint: disable=broad-except
      raise self._corrupt(step, "its checksums", error) from error
    restored = checksums(tree)
    wrong = sorted(path for path, value in restored.items() if saved.get(path) != value)
    if wrong:
      raise CorruptCheckpointError(
          f"checkpoint {self.directory}/{step} cannot be read: {len(wrong)} of "
          f"{len(restored)} arrays read back differ from what was saved (checksum mismatch), "
          f"e.g. {wrong[0]}")

  def restore_latest(self, abstract_state, config, data_iterator=None):
    """(state, step) of the newest step that restores, or (None, None) without checkpoints.

    Each newer step that cannot be read is named in the log with the reason and, once an
    older one has restored, moved to ``<workdir>/corrupt_checkpoints/<step>`` (not deleted:
    it may be worth a look). If no step restores, nothing is moved and CorruptCheckpointError
    lists them and says what to do.
    """
    failures = []
    for step in sorted(self.all_steps(), reverse=True):
      error = None
      try:
        state = self.restore(step, abstract_state, config, data_iterator)
      except CorruptCheckpointError as caught:
        error = caught
      if not _all_processes(error is None):  # every process must go on from the same step.
        error = error or CorruptCheckpointError(
            f"checkpoint {self.directory}/{step} cannot be read on another process")
        logging.warning("%s; trying the step before it", error)
        failures.append((step, error))
        continue
      self._move_aside([bad for bad, _ in failures])
      return state, step
    if failures:
      listed = "\n  ".join(str(error) for _, error in failures)
      raise CorruptCheckpointError(
          f"no checkpoint in {self.directory} can be restored:\n  {listed}\nNothing was "
          f"moved or deleted. To train afresh in this workdir, move {self.directory} aside "
          f"(e.g. mv {self.directory} {self.workdir / CORRUPT_DIR}); or pass another --workdir.")
    return None, None

  def _move_aside(self, steps: list[int]) -> None:
    """Moves unreadable steps out of orbax's directory, so that no later run restores them."""
    if steps and jax.process_index() == 0:
      aside = self.workdir / CORRUPT_DIR
      aside.mkdir(parents=True, exist_ok=True)
      for step in steps:
        target, copy = aside / str(step), 1
        while target.exists():  # the same step number may go bad twice.
          target, copy = aside / f"{step}.{copy}", copy + 1
        (self.directory / str(step)).rename(target)
        logging.warning("moved unreadable checkpoint step %d to %s", step, target)
    if steps:
      if jax.process_count() > 1:
        from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
        multihost_utils.sync_global_devices("gqn_jax.checkpoints.move_aside")
      self.manager.reload()

  def _restore_data(self, step: int, iterator, state_step: int) -> None:
    """Sets the grain iterator to its saved state (this process's file, or another's).

    The input pipeline's order is global (input_pipeline.create_dataset): every process's
    iterator stands at the same global batch index, so a state written by another number of
    processes fits this one as long as config.data.worker_count is unchanged.
    """
    index, count = jax.process_index(), jax.process_count()
    data_dir = self.directory / str(step) / "data"
    path = data_dir / f"process_{index}-of-{count}.json"
    if path.exists():
      iterator.set_state(json.loads(path.read_text()))
      return
    written = sorted(data_dir.glob("process_*-of-*.json")) if data_dir.exists() else []
    if written:
      saved = json.loads(written[0].read_text())
      try:
        iterator.set_state(saved)
        logging.warning("%s: data state written by another number of processes (%s); this "
                     "process %d of %d continues the same global batch order", data_dir,
                     written[0].name, index, count)
        return
      except Exception:  # pylint: disable=broad-except  # another worker_count, say.
        pass
    # A plain iterator's state is the index of the next batch, the step for a run that
    # started at batch 0; anything else cannot be mapped.
    if set(iterator.get_state()) == {"next_index"}:
      logging.warning("%s has no data state usable by process %d of %d; continuing at batch "
                      "%d", data_dir, index, count, state_step)
      iterator.set_state({"next_index": state_step})
    else:
      logging.warning("%s has no data state usable by process %d of %d; the input starts "
                      "afresh", data_dir, index, count)

  def reached_preemption(self, step: int) -> bool:
    return self.manager.reached_preemption(step)

  def wait_until_finished(self) -> None:
    """Waits for the save in flight; raises CheckpointSaveError (once) if it failed."""
    try:
      self.manager.wait_until_finished()
      self.manager.check_for_errors()
    except Exception as error:  # pylint: disable=broad-except
      if self._failed:  # already reported; orbax repeats the failure of its closed threads.
        return
      raise self._save_error(self._saving, error) from error

  def close(self) -> None:
    try:
      self.manager.close()
    except Exception:  # pylint: disable=broad-except
      if not self._failed:
        raise
    finally:
      # After a failed save the filters stay: asyncio reports the failed write tasks when it
      # collects them, which may be after this.
      if self._noise is not None and not self._failed:
        for name in ("absl", "asyncio"):
          logging.getLogger(name).removeFilter(self._noise)
        self._noise = None


def _read_config(workdir: epath.Path, checkpointer: Checkpointer, step: int):
  try:
    return checkpointer.saved_config(step)
  except (FileNotFoundError, KeyError, ValueError):
    path = workdir / CONFIG_FILE
    if not path.exists():
      raise CheckpointNotFoundError(
          f"checkpoint {checkpointer.directory}/{step} has no config and {path} does not "
          f"exist") from None
    return json.loads(path.read_text())


@dataclasses.dataclass(frozen=True)
class Checkpoint:
  """A trained run, loaded for inference."""
  workdir: epath.Path                   # as given (for messages and records).
  step: int                             # the checkpoint's training step.
  config: Any                           # the run's resolved ml_collections.ConfigDict.
  model_config: config_lib.ModelConfig
  params: Any


def load(workdir, step: int | None = None) -> Checkpoint:
  """The run in ``workdir`` at ``step`` (default its latest checkpoint), for inference.

  Parameters come back as jax arrays on this process's first device, whatever the number of
  devices the run trained on.

  Without ``step``, a newest step that cannot be read is named in the log and the one before
  it is loaded (nothing is moved; training moves such steps aside).

  Raises:
    FileNotFoundError: ``workdir`` (local or a URL such as gs://...) is not a directory.
    CheckpointNotFoundError: the workdir has no checkpoint, or none at ``step``.
    IncompatibleCheckpointError: the parameters do not fit the config's model.
    CorruptCheckpointError: ``step`` (or, without one, every step) cannot be read.
  """
  given = epath.Path(workdir)  # not pathlib, which makes gs://bucket into gs:/bucket.
  if not given.is_dir():
    raise FileNotFoundError(f"--workdir={given}: no such directory")
  config, params, step = _load(workdir, step)
  return Checkpoint(given, step, config, config_lib.model_config(config.model), params)


def load_for_inference(workdir, step: int | None = None
                       ) -> tuple[ml_collections.ConfigDict, Any]:
  """``load``'s config and parameters: (the run's resolved config, its step's parameters)."""
  config, params, _ = _load(workdir, step)
  return config, params


def _load(workdir, step: int | None):
  # The parameters go to this process's first device whatever mesh the caller has set: a run
  # that starts from another run's parameters (train.init_from) loads them under its own mesh,
  # where the checksums' jit would otherwise refuse one-device arrays.
  with jax.set_mesh(jax.make_mesh((1,), ("load",), devices=jax.local_devices()[:1])):
    return _load_on_first_device(workdir, step)


def _load_on_first_device(workdir, step: int | None):
  workdir = _absolute(workdir)
  directory = workdir / CHECKPOINT_DIR
  if not directory.exists():
    raise CheckpointNotFoundError(
        f"no checkpoint in workdir {workdir} ({directory} does not exist); train one with\n"
        f"  python -m gqn_jax.train --config=<config file> --workdir={workdir}")
  checkpointer = Checkpointer(workdir, read_only=True)
  try:
    steps = checkpointer.all_steps()
    if not steps:
      raise CheckpointNotFoundError(f"no complete checkpoint in {directory}")
    if step is not None:
      if step not in steps:
        raise CheckpointNotFoundError(f"no checkpoint of step {step} in {directory}; it has "
                                      f"steps {sorted(steps)}")
      return (*_load_step(workdir, checkpointer, step), step)
    # The newest step that can be read, as training resumes (Checkpointer.restore_latest),
    # but nothing is moved: evaluation may run beside a training job that owns the workdir.
    failures = []
    for candidate in sorted(steps, reverse=True):
      try:
        return (*_load_step(workdir, checkpointer, candidate), candidate)
      except CorruptCheckpointError as error:
        logging.warning("%s; trying the step before it", error)
        failures.append(str(error))
    listed = "\n  ".join(failures)
    raise CorruptCheckpointError(
        f"no checkpoint in {directory} can be read:\n  {listed}\nRerunning training in "
        f"{workdir} reports the same and stops; train afresh with another --workdir.")
  finally:
    checkpointer.close()


def _load_step(workdir: epath.Path, checkpointer: Checkpointer, step: int):
  """(config, params) of one step, on this process's first device; checksums verified."""
  directory = checkpointer.directory
  try:
    config = ml_collections.ConfigDict(_read_config(workdir, checkpointer, step))
  except json.JSONDecodeError as error:
    raise checkpointer._corrupt(step, "its config", error) from error  # pylint: disable=protected-access
  model = GQN(config_lib.model_config(config.model))
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  params = jax.eval_shape(lambda: train_step.init_params(model, jax.random.key(0)))
  target = {"params": _abstract(params, device)}
  args = ocp.args.PyTreeRestore(
      item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
      partial_restore=True)
  try:
    restored = checkpointer.manager.restore(step, args=ocp.args.Composite(state=args))
  except Exception as error:  # pylint: disable=broad-except
    if _is_shape_error(error):
      raise IncompatibleCheckpointError(
          f"{directory}/{step}: the parameters do not fit the model of its config "
          f"{workdir / CONFIG_FILE}: {error}") from None
    raise checkpointer._corrupt(step, "its parameters", error) from error  # pylint: disable=protected-access
  checkpointer.verify(step, {"params": restored.state["params"]})
  return config, restored.state["params"]


def params_to_start_from(path, config) -> Any:
  """The latest parameters of run directory ``path``, to start a run of ``config`` from.

  Raises FileNotFoundError / CheckpointNotFoundError when ``path`` holds no model, and
  IncompatibleCheckpointError naming each architecture field in which the two configs differ.
  """
  where = f"config.train.init_from={path}"
  if not epath.Path(path).is_dir():
    raise FileNotFoundError(f"{where}: no such directory (a run directory holding "
                            f"{CHECKPOINT_DIR}/)")
  loaded = load(path)
  mismatches = [line for line in config_mismatches(config_to_dict(loaded.config),
                                                   config_to_dict(config))
                if line.startswith("config.model.")]  # the optimizer starts afresh.
  if mismatches:
    raise IncompatibleCheckpointError(
        f"{where}: its step {loaded.step} is another model than this run's:\n  "
        + "\n  ".join(mismatches))
  logging.info("starting from the parameters of %s, step %d", path, loaded.step)
  return loaded.params


def abstract_state(model: GQN, optim_cfg, sharding):
  """The TrainState's shapes and dtypes, with ``sharding`` on every leaf, for restoring."""
  shapes = jax.eval_shape(lambda: train_step.create_train_state(model, optim_cfg,
                                                                jax.random.key(0)))
  return _abstract(shapes, sharding)
