"""The faults a long training job meets, each injected, with what the user sees and what is kept.

docs/faults.md has the table of fault, behaviour and test. Faults: an unreadable checkpoint
(truncated or flipped files), a full disk during a save, SIGTERM (preemption) during a step and
during an asynchronous save, and a resume with another number of processes.
"""

import errno
import logging
import os
import pathlib
import shutil
import signal

import jax
import numpy as np
import pytest
from orbax.checkpoint._src.handlers import json_checkpoint_handler

import _train_synthetic
import _train_tiny_config
from gqn_jax import checkpoints
from gqn_jax import config as config_lib
from gqn_jax import parallel
from gqn_jax import train_step as ts
from gqn_jax import trainer
from gqn_jax.model import GQN


def _config(**train):
  config = _train_tiny_config.get_config()
  config.train.update(**train)
  return config


def _abstract(config):
  model = GQN(config_lib.model_config(config.model))
  sharding = parallel.replicated(parallel.data_mesh(jax.devices()[:1]))
  return checkpoints.abstract_state(model, config_lib.optim_config(config.optim), sharding)


def _states(config, steps):
  """{step: a TrainState whose parameters differ from every other step's}."""
  model = GQN(config_lib.model_config(config.model))
  optim = config_lib.optim_config(config.optim)
  return {step: ts.create_train_state(model, optim, jax.random.key(step)).replace(
      step=jax.numpy.asarray(step, jax.numpy.int32)) for step in steps}


def _save(workdir, config, states):
  checkpointer = checkpoints.Checkpointer(workdir)
  for step, state in states.items():
    checkpointer.save(step, state, config)
  checkpointer.wait_until_finished()
  checkpointer.close()


def _assert_same(actual, expected):
  assert jax.tree.structure(actual) == jax.tree.structure(expected)
  for (path, value), other in zip(jax.tree_util.tree_flatten_with_path(expected)[0],
                                  jax.tree.leaves(actual)):
    np.testing.assert_array_equal(np.asarray(other), np.asarray(value),
                                  err_msg=jax.tree_util.keystr(path))


def _files(directory: pathlib.Path) -> dict[str, bytes]:
  return {str(p.relative_to(directory)): p.read_bytes()
          for p in sorted(directory.rglob("*")) if p.is_file()}


def _largest_array_file(step_dir: pathlib.Path) -> pathlib.Path:
  return max((p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"),
             key=lambda p: p.stat().st_size)


def _truncate(step_dir):
  path = _largest_array_file(step_dir)
  path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def _flip(step_dir):
  # zstd stores incompressible (random) parameters raw and OCDBT has no checksum: without
  # gqn_jax's own checksums this step restores without error, with other values.
  path = _largest_array_file(step_dir)
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0x01
  path.write_bytes(bytes(data))


def _truncate_config(step_dir):
  path = step_dir / "config" / "metadata"
  path.write_bytes(path.read_bytes()[:10])


CORRUPTIONS = {"truncated_array_file": (_truncate, "its state"),
               "one_bit_flipped": (_flip, "checksum mismatch"),
               "truncated_config": (_truncate_config, "its config")}


# --- An unreadable checkpoint -------------------------------------------------------------------

@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_unreadable_latest_step_is_named_moved_aside_and_the_one_before_restored(
    tmp_path, caplog, corruption):
  config = _config()
  states = _states(config, [1, 2, 3])
  _save(tmp_path, config, states)
  corrupt, reason = CORRUPTIONS[corruption]
  step_dir = tmp_path / "checkpoints" / "3"
  corrupt(step_dir)
  bad_files = _files(step_dir)

  checkpointer = checkpoints.Checkpointer(tmp_path)
  with caplog.at_level(logging.WARNING):
    state, step = checkpointer.restore_latest(_abstract(config), config)
  checkpointer.close()
  assert step == 2
  _assert_same(state, states[2])
  logged = caplog.text
  assert f"checkpoint {step_dir} cannot be read: " in logged and reason in logged
  # Moved aside byte for byte, not deleted; orbax no longer lists it.
  aside = tmp_path / checkpoints.CORRUPT_DIR / "3"
  assert not step_dir.exists() and _files(aside) == bad_files
  assert f"moved unreadable checkpoint step 3 to {aside}" in logged
  assert sorted(checkpoints.Checkpointer(tmp_path, read_only=True).all_steps()) == [1, 2]


def test_when_no_step_restores_nothing_is_moved_and_the_error_says_what_to_do(tmp_path):
  config = _config()
  _save(tmp_path, config, _states(config, [1, 2]))
  _truncate(tmp_path / "checkpoints" / "2")
  _flip(tmp_path / "checkpoints" / "1")
  before = _files(tmp_path / "checkpoints")
  checkpointer = checkpoints.Checkpointer(tmp_path)
  with pytest.raises(checkpoints.CorruptCheckpointError) as error:
    checkpointer.restore_latest(_abstract(config), config)
  checkpointer.close()
  message = str(error.value)
  assert f"no checkpoint in {tmp_path / 'checkpoints'} can be restored" in message
  assert "checkpoints/2 cannot be read: its state" in message
  assert "checkpoints/1 cannot be read: " in message and "checksum mismatch" in message
  assert "Nothing was moved or deleted" in message and "another --workdir" in message
  assert _files(tmp_path / "checkpoints") == before
  assert not (tmp_path / checkpoints.CORRUPT_DIR).exists()


def test_load_without_a_step_skips_an_unreadable_latest_step_and_moves_nothing(tmp_path, caplog):
  config = _config()
  states = _states(config, [3, 7])
  _save(tmp_path, config, states)
  _truncate(tmp_path / "checkpoints" / "7")
  with caplog.at_level(logging.WARNING):
    run = checkpoints.load(tmp_path)
  assert run.step == 3
  _assert_same(run.params, states[3].params)
  assert "checkpoints/7 cannot be read: its parameters" in caplog.text
  assert (tmp_path / "checkpoints" / "7").is_dir()  # evaluation never moves a run's files.
  with pytest.raises(checkpoints.CorruptCheckpointError, match="checkpoints/7 cannot be read"):
    checkpoints.load_for_inference(tmp_path, step=7)
  _flip(tmp_path / "checkpoints" / "3")
  with pytest.raises(checkpoints.CorruptCheckpointError, match="no checkpoint in .* can be read"):
    checkpoints.load_for_inference(tmp_path)


@pytest.mark.slow
def test_training_resumes_from_the_newest_readable_step(tmp_path, caplog):
  config = _config(num_steps=3, checkpoint_every_steps=1)
  trainer.train_and_evaluate(config, tmp_path, data=_train_synthetic.data(config))
  _truncate(tmp_path / "checkpoints" / "3")
  config.train.num_steps = 4
  with caplog.at_level(logging.INFO):
    result = trainer.train_and_evaluate(config, tmp_path, data=_train_synthetic.data(config))
  assert result["step"] == 4
  assert f"restored {tmp_path / 'checkpoints'}/2" in caplog.text
  assert (tmp_path / checkpoints.CORRUPT_DIR / "3" / "state").is_dir()
  checkpointer = checkpoints.Checkpointer(tmp_path, read_only=True)
  assert sorted(checkpointer.all_steps()) == [2, 3, 4]  # step 3 written again, readable.
  checkpointer.close()


# --- A full disk ---------------------------------------------------------------------------------

def test_enospc_during_an_async_save_is_one_error_naming_workdir_and_step(tmp_path, monkeypatch):
  """The JSON items are written in orbax's background thread; ENOSPC there, as a full disk
  raises it, must reach the user as one error, leave steps 1 and 2 as they were and not
  count the half-written step 3 as a checkpoint."""
  config = _config()
  states = _states(config, [1, 2, 3])
  save_json = json_checkpoint_handler.JsonCheckpointHandler._save_fn  # pylint: disable=protected-access

  async def full_disk_at_step_3(self, x, directory):
    if "/3" in str(directory).split("checkpoints", 1)[1][:3]:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory))
    return await save_json(self, x, directory)

  monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler, "_save_fn",
                      full_disk_at_step_3)
  checkpointer = checkpoints.Checkpointer(tmp_path)
  checkpointer.save(1, states[1], config)
  checkpointer.save(2, states[2], config)
  checkpointer.wait_until_finished()
  earlier = _files(tmp_path / "checkpoints")
  with pytest.raises(checkpoints.CheckpointSaveError) as error:
    checkpointer.save(3, states[3], config)
    checkpointer.wait_until_finished()
  checkpointer.wait_until_finished()  # reported once: the caller's cleanup does not raise again.
  checkpointer.close()
  message = str(error.value)
  assert f"saving checkpoint step 3 in workdir {tmp_path} failed: no space left on device" \
      in message
  assert "steps [1, 2]) are intact and a rerun resumes from step 2" in message
  monkeypatch.undo()
  reader = checkpoints.Checkpointer(tmp_path, read_only=True)
  assert sorted(reader.all_steps()) == [1, 2]
  reader.close()
  assert {k: v for k, v in _files(tmp_path / "checkpoints").items() if k in earlier} == earlier
  for step in (1, 2):
    _, params = checkpoints.load_for_inference(tmp_path, step=step)
    _assert_same(params, states[step].params)


# --- SIGTERM (preemption) ------------------------------------------------------------------------

def _sigterm_in_step(monkeypatch, step: int):
  """Makes the trainer's step function send this process SIGTERM right after dispatching
  step ``step`` (1-based), while the device computes it."""
  make = ts.make_train_step

  def make_then_sigterm(*args, **kwargs):
    step_fn, calls = make(*args, **kwargs), []

    def wrapped(*step_args):
      calls.append(None)
      out = step_fn(*step_args)
      if len(calls) == step:
        os.kill(os.getpid(), signal.SIGTERM)
      return out

    return wrapped

  monkeypatch.setattr(trainer.ts, "make_train_step", make_then_sigterm)


def _uninterrupted(tmp_path, config):
  return trainer.train_and_evaluate(config, tmp_path / "reference",
                                    data=_train_synthetic.data(config))


@pytest.mark.slow
def test_sigterm_during_a_step_saves_that_step_and_a_restart_is_bit_identical(tmp_path,
                                                                             monkeypatch):
  config = _config(num_steps=6, checkpoint_every_steps=100)  # no save but the SIGTERM's.
  reference = _uninterrupted(tmp_path, config)
  workdir = tmp_path / "preempted"
  _sigterm_in_step(monkeypatch, 3)
  stopped = trainer.train_and_evaluate(config, workdir, data=_train_synthetic.data(config))
  monkeypatch.undo()
  assert stopped["preempted"] and stopped["step"] == 3
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is the run's only.
  checkpointer = checkpoints.Checkpointer(workdir, read_only=True)
  assert checkpointer.all_steps() == [3]
  checkpointer.close()
  resumed = trainer.train_and_evaluate(config, workdir, data=_train_synthetic.data(config))
  assert resumed["step"] == 6 and not resumed["preempted"]
  _assert_same(resumed["state"], reference["state"])


@pytest.mark.slow
def test_sigterm_during_an_async_save_saves_the_next_step_and_a_restart_is_bit_identical(
    tmp_path, monkeypatch):
  config = _config(num_steps=6, checkpoint_every_steps=2)
  reference = _uninterrupted(tmp_path, config)
  save = checkpoints.Checkpointer.save
  in_flight = []

  def save_then_sigterm(self, step, *args, **kwargs):
    started = save(self, step, *args, **kwargs)
    if step == 2:  # the save of step 2 is being written in orbax's thread now.
      in_flight.append(self.manager.is_saving_in_progress())
      os.kill(os.getpid(), signal.SIGTERM)
    return started

  monkeypatch.setattr(checkpoints.Checkpointer, "save", save_then_sigterm)
  workdir = tmp_path / "preempted"
  stopped = trainer.train_and_evaluate(config, workdir, data=_train_synthetic.data(config))
  monkeypatch.undo()
  assert in_flight == [True]
  assert stopped["preempted"] and stopped["step"] == 3
  checkpointer = checkpoints.Checkpointer(workdir, read_only=True)
  assert sorted(checkpointer.all_steps()) == [2, 3]  # both complete.
  checkpointer.close()
  resumed = trainer.train_and_evaluate(config, workdir, data=_train_synthetic.data(config))
  assert resumed["step"] == 6
  _assert_same(resumed["state"], reference["state"])


# --- Another number of processes ----------------------------------------------------------------

@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  import _data_builder  # pylint: disable=g-import-not-at-top
  data_dir, _, _ = _data_builder.prepared(tmp_path_factory)
  return data_dir


def _pipeline(data_dir, process_index, process_count):
  from gqn_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  return input_pipeline.create_dataset(
      "rooms_ring_camera", "train", data_dir=data_dir, global_batch_size=4, image_size=8,
      seed=3, process_index=process_index, process_count=process_count, read_threads=1)


def _take(iterator, count):
  return [next(iterator) for _ in range(count)]


def test_a_state_saved_by_one_process_resumes_two_in_the_same_global_order(
    dataset, tmp_path, monkeypatch):
  """1 process reads global batches 0..2 and checkpoints; 2 processes resume from its state
  and their rows of batches 3..5, side by side, are the single process's batches 3..5."""
  single = iter(_pipeline(dataset, 0, 1))
  _take(single, 3)
  step_dir = tmp_path / "checkpoints" / "3" / "data"
  step_dir.mkdir(parents=True)
  (step_dir / "process_0-of-1.json").write_text(__import__("json").dumps(single.get_state()))
  expected = _take(single, 3)
  checkpointer = checkpoints.Checkpointer(tmp_path, read_only=True)
  halves = []
  for index in range(2):
    monkeypatch.setattr(jax, "process_index", lambda index=index: index)
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    iterator = iter(_pipeline(dataset, index, 2))
    checkpointer._restore_data(3, iterator, 3)  # pylint: disable=protected-access
    halves.append(_take(iterator, 3))
  monkeypatch.undo()
  checkpointer.close()
  for batch, first, second in zip(expected, *halves):
    for key in batch:
      np.testing.assert_array_equal(np.concatenate([first[key], second[key]]), batch[key],
                                    err_msg=key)


# --- The command line: a real full disk, and SIGTERM's exit status ------------------------------

def _train_command(workdir, data_dir, *overrides):
  from _train_synthetic import PYTHON  # pylint: disable=g-import-not-at-top
  return [PYTHON, "-m", "gqn_jax.train", "--config=tests/_train_tiny_config.py",
          f"--workdir={workdir}", f"--config.data.data_dir={data_dir}",
          "--config.data.dataset=rooms_ring_camera", *overrides]


def _namespaces_work(directory) -> bool:
  """Whether this machine lets an unprivileged user mount a tmpfs in its own namespace."""
  if shutil.which("unshare") is None:
    return False
  import subprocess  # pylint: disable=g-import-not-at-top
  probe = subprocess.run(["unshare", "-Urm", "sh", "-c",
                          f"mount -t tmpfs -o size=1m tmpfs {directory}"],
                         capture_output=True, check=False)
  return probe.returncode == 0


@pytest.mark.slow
def test_full_disk_under_the_workdir_is_one_error_and_keeps_the_earlier_steps(tmp_path, dataset):
  """gqn-train on a 2.5 MB filesystem (a tmpfs in a user and mount namespace): the checkpoints
  of the tiny model are about 0.9 MB each, so the third save finds the disk full."""
  import subprocess  # pylint: disable=g-import-not-at-top
  from _train_synthetic import REPO, subprocess_env  # pylint: disable=g-import-not-at-top
  disk, kept = tmp_path / "disk", tmp_path / "kept"
  disk.mkdir()
  if not _namespaces_work(disk):
    pytest.skip("unshare -Urm cannot mount a tmpfs here (no user namespaces)")
  workdir = disk / "run"
  command = " ".join(_train_command(workdir, dataset, "--config.train.num_steps=24",
                                    "--config.train.checkpoint_every_steps=2",
                                    "--config.train.keep_checkpoints=5"))
  script = (f"mount -t tmpfs -o size=2560k tmpfs {disk} && {command}; status=$?; "
            f"cp -a {workdir} {kept}; exit $status")
  result = subprocess.run(["unshare", "-Urm", "sh", "-c", script], env=subprocess_env(),
                          cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 1, result.stderr[-4000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1, result.stderr[-4000:]
  assert "Traceback" not in result.stderr and "Event loop is closed" not in result.stderr, \
      result.stderr[-4000:]
  message = errors[0]
  assert f"in workdir {workdir} failed: no space left on device" in message, message
  failed = int(message.split("saving checkpoint step ")[1].split()[0])
  reader = checkpoints.Checkpointer(kept, read_only=True)
  steps = sorted(reader.all_steps())
  reader.close()
  assert steps and failed not in steps and steps == list(range(2, failed, 2)), (steps, message)
  assert f"steps {steps}) are intact and a rerun resumes from step {steps[-1]}" in message
  for step in steps:  # every earlier step still reads back, checksums and all.
    checkpoints.load_for_inference(kept, step=step)
  assert checkpoints.load(kept).step == steps[-1]  # no half-written step taken for complete.


@pytest.fixture(scope="module")
def cli_reference(tmp_path_factory, dataset):
  """An uninterrupted 12-step gqn-train run, and the compilation cache the others share."""
  import subprocess  # pylint: disable=g-import-not-at-top
  from _train_synthetic import REPO, subprocess_env  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("sigterm")
  env = subprocess_env(cache_dir=root / "compilation_cache")
  result = subprocess.run(_train_command(root / "reference", dataset,
                                         "--config.train.num_steps=12"),
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=600,
                          check=False)
  assert result.returncode == 0, result.stderr[-4000:]
  return root / "reference", env


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["step", "async_save"])
def test_gqn_train_on_sigterm_saves_exits_143_and_resumes_bit_identically(
    tmp_path, dataset, cli_reference, moment):
  import subprocess  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  from _train_synthetic import REPO  # pylint: disable=g-import-not-at-top
  reference, env = cli_reference
  workdir = tmp_path / "run"
  every = 1 if moment == "async_save" else 100
  command = _train_command(workdir, dataset, "--config.train.num_steps=12",
                           f"--config.train.checkpoint_every_steps={every}",
                           "--config.train.log_every_steps=1")
  log = tmp_path / "run.log"
  with open(log, "w") as out:
    run = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
  checkpoint_dir = workdir / "checkpoints"
  try:
    deadline = time.monotonic() + 500
    while run.poll() is None:
      assert time.monotonic() < deadline, "the run did not get to step 3 in time"
      if moment == "step" and "step 3: loss" in log.read_text():
        break
      if moment == "async_save" and checkpoint_dir.exists() and any(
          "orbax-checkpoint-tmp" in p.name and int(p.name.split(".")[0]) >= 3
          for p in checkpoint_dir.iterdir()):
        break
      time.sleep(0.01)
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=300) == trainer.PREEMPTED_EXIT_CODE == 143, log.read_text()[-4000:]
  finally:
    if run.poll() is None:
      run.kill()
  output = log.read_text()
  stopped = int(output.split("stopped by SIGTERM after saving step ")[1].split()[0])
  assert 3 <= stopped < 12 and "Traceback" not in output
  reader = checkpoints.Checkpointer(workdir, read_only=True)
  assert reader.latest_step() == stopped
  reader.close()
  restart = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                           timeout=600, check=False)
  assert restart.returncode == 0, restart.stderr[-4000:]
  assert f"restored {checkpoint_dir}/{stopped}" in restart.stderr
  _, expected = checkpoints.load_for_inference(reference, step=12)
  _, resumed = checkpoints.load_for_inference(workdir, step=12)
  _assert_same(resumed, expected)


# --- A partial download --------------------------------------------------------------------------

def _touch_release(root, name, drop):
  """Empty files named as the release's shards of ``name``, less ``drop`` {split: count}."""
  from gqn_jax import released_format  # pylint: disable=g-import-not-at-top
  info = released_format.DATASETS[name]
  for split, total in (("train", info.train_files), ("test", info.test_files)):
    directory = root / name / split
    directory.mkdir(parents=True)
    for index in range(1, total + 1 - drop.get(split, 0)):
      (directory / released_format.shard_name(index, total)).touch()
  return root / name


def test_missing_files_counts_found_and_expected_per_split(tmp_path):
  import _data_builder  # pylint: disable=g-import-not-at-top
  builder = _data_builder.builder_module()
  complete = _touch_release(tmp_path / "complete", "shepard_metzler_5_parts", {})
  assert builder.missing_files(complete, "shepard_metzler_5_parts") == {}
  partial = _touch_release(tmp_path / "partial", "shepard_metzler_5_parts", {"train": 3})
  assert builder.missing_files(partial, "shepard_metzler_5_parts-skip_bad") == {
      "train": (897, 900)}


def test_building_from_a_partial_download_warns_with_the_counts(tmp_path, caplog):
  import _data_builder  # pylint: disable=g-import-not-at-top
  import _data_records  # pylint: disable=g-import-not-at-top
  _data_records.write_dataset(tmp_path / "manual", "rooms_ring_camera",
                              {"train": 25, "test": 5}, 10)
  with caplog.at_level(logging.WARNING):
    builder = _data_builder.build("rooms_ring_camera", tmp_path / "manual", tmp_path / "tfds")
  assert builder.info.splits["train"].num_examples == 25  # what there is is still built.
  assert ("gqn/rooms_ring_camera: " + str(tmp_path / "manual" / "rooms_ring_camera")
          + " holds a partial download: train 3 of 2160 files, test 1 of 240 files") \
      in caplog.text
  assert "gsutil -m cp -R gs://gqn-dataset/rooms_ring_camera" in caplog.text


@pytest.mark.slow
def test_a_run_of_one_process_resumed_by_two_continues_the_same_global_batches(tmp_path):
  """1 process trains steps 1..3 and checkpoints; 2 processes (jax.distributed on localhost,
  gloo collectives) resume it to step 6. Their parameters match a 1-process run of 6 steps to
  the tolerance of tests/test_parallel.py (the 2-process all-reduce rounds differently); a
  wrong data order would miss it by about the learning rate."""
  import _train_synthetic  # pylint: disable=g-import-not-at-top
  from gqn_jax.configs import tiny  # pylint: disable=g-import-not-at-top
  _train_synthetic.train_processes([(tmp_path / "resumed", tmp_path / "first.npz", 0, 1, 0, 3),
                                    (tmp_path / "reference", tmp_path / "reference.npz", 0, 1, 0,
                                     6)])
  port = _train_synthetic.free_port()
  logs = _train_synthetic.train_processes(
      [(tmp_path / "resumed", tmp_path / f"process{i}.npz", i, 2, port, 6) for i in range(2)])
  assert all("continues the same global batch order" in log for log in logs), logs[0][-3000:]
  with np.load(tmp_path / "reference.npz") as stored:
    reference = dict(stored)
  learning_rate = tiny.get_config().optim.lr_initial
  for index in range(2):
    with np.load(tmp_path / f"process{index}.npz") as stored:
      for name, value in stored.items():
        np.testing.assert_allclose(value, reference[name], rtol=0, atol=0.05 * learning_rate,
                                   err_msg=name)
