"""Every command-line tool ends a user's mistake with its message alone, not a traceback.

gqn_jax/cli.py turns the errors a user can act on into ``error: <message>`` and exit status 1;
``--verbosity=1`` shows the traceback too. Each case runs the real command in a subprocess.
"""

import subprocess

import pytest

import _data_builder
from _train_synthetic import PYTHON, REPO, subprocess_env


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  data_dir, _, _ = _data_builder.prepared(tmp_path_factory)
  return data_dir


def _run(*args, timeout=300):
  return subprocess.run([PYTHON, "-m", *map(str, args)], env=subprocess_env(), cwd=REPO,
                        capture_output=True, text=True, timeout=timeout, check=False)


def _assert_message_alone(result, *expected, lines: int = 4):
  """Exit status 1, no traceback, and stderr ends with the message (at most ``lines``)."""
  assert result.returncode == 1, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  error = result.stderr[result.stderr.rindex("error: "):]
  assert error.strip().count("\n") < lines, result.stderr[-3000:]
  for text in expected:
    assert text in error, result.stderr[-3000:]


def _train(tmp_path, *overrides):
  return _run("gqn_jax.train", "--config=tests/_train_tiny_config.py",
              f"--workdir={tmp_path / 'run'}", "--config.train.num_steps=1", *overrides)


def test_train_unknown_dataset(tmp_path, dataset):
  result = _train(tmp_path, "--config.data.dataset=no_such_rooms",
                  f"--config.data.data_dir={dataset}")
  _assert_message_alone(result, "unknown dataset 'no_such_rooms': the gqn datasets are "
                        "rooms_ring_camera, ")


def test_train_missing_data_dir(tmp_path):
  missing = tmp_path / "no_such_dir"
  result = _train(tmp_path, "--config.data.dataset=rooms_ring_camera",
                  f"--config.data.data_dir={missing}")
  _assert_message_alone(result, f"data_dir={missing} does not exist",
                        "tfds build data/gqn --config=rooms_ring_camera")


def test_train_too_many_context_views_and_the_traceback_on_request(tmp_path, dataset):
  overrides = ("--config.data.dataset=rooms_ring_camera", f"--config.data.data_dir={dataset}",
               "--config.data.max_context_views=12")
  _assert_message_alone(_train(tmp_path, *overrides), "max_context_views=12 must be in 1..9")
  verbose = _train(tmp_path, *overrides, "--verbosity=1")
  assert verbose.returncode == 1
  assert "Traceback" in verbose.stderr and "max_context_views=12 must be in 1..9" in verbose.stderr


def test_evaluate_and_render_without_a_run(tmp_path):
  missing = tmp_path / "no_such_run"
  _assert_message_alone(_run("gqn_jax.evaluate", f"--workdir={missing}"), str(missing))
  _assert_message_alone(_run("gqn_jax.render", "novel_views", f"--workdir={missing}",
                             f"--output={tmp_path / 'x.png'}"), str(missing))


def test_evaluate_a_run_whose_every_checkpoint_is_unreadable(tmp_path):
  """The loader's CorruptCheckpointError (a RuntimeError) is a user error too."""
  import jax  # pylint: disable=g-import-not-at-top
  import _train_tiny_config  # pylint: disable=g-import-not-at-top
  from gqn_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from gqn_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  from gqn_jax import train_step as ts  # pylint: disable=g-import-not-at-top
  from gqn_jax.model import GQN  # pylint: disable=g-import-not-at-top
  config = _train_tiny_config.get_config()
  state = ts.create_train_state(GQN(config_lib.model_config(config.model)),
                                config_lib.optim_config(config.optim), jax.random.key(0))
  checkpointer = checkpoints.Checkpointer(tmp_path)
  checkpointer.save(0, state, config)
  checkpointer.close()
  for path in (tmp_path / "checkpoints" / "0" / "state").rglob("*"):
    if path.is_file() and path.parent.name == "d":
      path.write_bytes(path.read_bytes()[:8])
  _assert_message_alone(_run("gqn_jax.evaluate", f"--workdir={tmp_path}"),
                        "cannot be read", str(tmp_path / "checkpoints" / "0"))


def test_summary_and_generate_bad_values(tmp_path):
  _assert_message_alone(_run("gqn_jax.summary", "--config=tests/_train_tiny_config.py",
                             "--config.model.steps=0"), "config.model.steps")
  result = _run("gqn_jax.generate", "--name=no_such_scenes", f"--root={tmp_path}", "--train_scenes=1", "--test_scenes=1")
  assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
  assert "no_such_scenes" in result.stderr


@pytest.mark.parametrize("error, alone", [("ValueError('--x: bad')", True),
                                          ("OSError(28, 'No space left on device')", True),
                                          ("TypeError('a bug')", False)])
def test_cli_prints_user_errors_alone_and_keeps_the_traceback_of_bugs(error, alone):
  code = ("from gqn_jax import cli\n"
          "def main(argv):\n"
          f"  raise {error}\n"
          "cli.run(main, __name__)\n")
  result = subprocess.run([PYTHON, "-c", code], env=subprocess_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 1
  assert ("Traceback" not in result.stderr) == alone, result.stderr
  if alone:
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
