"""Render workers: rendering stays out of the calling process, and failures are reported."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from gqn_jax.scenes import worker

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_errors_in_a_worker_come_back_with_their_traceback():
  pool = worker.RenderPool(1)
  try:
    with pytest.raises(worker.WorkerError, match="unknown scene family 'nope'"):
      pool.call("render_scene", "nope", "train", 0, 16, 0)
    frames, cameras, _ = pool.call("render_scene", "shepard_metzler_5_parts", "train", 0, 16, 0)
    assert frames.shape == (15, 16, 16, 3) and cameras.shape == (15, 5)
  finally:
    pool.close()


def test_a_crashed_worker_is_reported_and_replaced():
  pool = worker.RenderPool(1)
  try:
    first = pool.call("render_scene", "shepard_metzler_5_parts", "train", 1, 16, 0)[0]
    process = pool._processes[0]  # pylint: disable=protected-access
    process._process.kill()  # pylint: disable=protected-access
    with pytest.raises(worker.WorkerError, match="render worker stopped"):
      pool.call("render_scene", "shepard_metzler_5_parts", "train", 1, 16, 0)
    again = pool.call("render_scene", "shepard_metzler_5_parts", "train", 1, 16, 0)[0]
    np.testing.assert_array_equal(again, first)
  finally:
    pool.close()


def test_renderer_refuses_to_load_osmesa_next_to_tensorflow():
  """A clear ImportError instead of the segfault that loading both LLVMs causes."""
  code = "import tensorflow\nimport gqn_jax.scenes.renderer\n"
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO),
                                                MUJOCO_GL="osmesa"))
  assert result.returncode == 1, result.stderr[-2000:]
  assert "cannot load OSMesa in a process that has imported TensorFlow" in result.stderr
