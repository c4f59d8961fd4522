"""Synthetic global batches for the training-loop tests, and the environment of subprocesses.

Global batch i is a function of i alone; process p of P feeds rows [p B / P, (p + 1) B / P) of
it, as the input pipeline would, so runs over any number of processes see the same global
batches and can be compared with a single-process run.
"""

import os
import pathlib
import socket
import subprocess
import sys

import grain
import numpy as np

from gqn_jax import trainer
from gqn_jax import xla_flags

REPO = pathlib.Path(__file__).resolve().parents[1]


def global_batch(index: int, batch_size: int, image_size: int, views: int):
  rng = np.random.default_rng([7, index])
  count = int(rng.integers(1, views + 1))  # M, as the input pipeline draws it per batch.
  mask = np.broadcast_to(np.arange(views) < count, (batch_size, views)).copy()
  return {
      "context_images": rng.uniform(size=(batch_size, views, image_size, image_size, 3)
                                    ).astype(np.float32) * mask[..., None, None, None],
      "context_poses": rng.normal(size=(batch_size, views, 7)).astype(np.float32)
                       * mask[..., None],
      "context_mask": mask,
      "query_image": rng.uniform(size=(batch_size, image_size, image_size, 3)).astype(np.float32),
      "query_pose": rng.normal(size=(batch_size, 7)).astype(np.float32),
  }


def data(config, process_index: int = 0, process_count: int = 1) -> trainer.Data:
  """trainer.Data of synthetic batches: this process's rows of each global batch."""
  size, views = config.model.image_size, config.data.max_context_views

  def rows(batch_size, index):
    batch = global_batch(index, batch_size, size, views)
    share = batch_size // process_count
    return {k: v[process_index * share:(process_index + 1) * share] for k, v in batch.items()}

  batch_size = config.train.batch_size
  train = grain.MapDataset.range(10**9).map(lambda i: rows(batch_size, i)).to_iter_dataset()
  evaluate = lambda: [rows(batch_size, 10**9 + i) for i in range(config.train.eval_batches)]
  images = global_batch(2 * 10**9, config.train.image_scenes, size, views)
  return trainer.Data(train=train, eval=evaluate, images=images if process_index == 0 else None)


def subprocess_env(devices: int = 1, cache_dir=None) -> dict:
  """Environment of a JAX subprocess on CPU with ``devices`` simulated devices.

  Optimisations are reduced as in conftest.py (compilation dominates these tests), remat's
  barriers are kept as the entry points keep them (gqn_jax/xla_flags.py), and a persistent
  compilation cache lets a restarted run skip compiling again.
  """
  env = dict(os.environ)
  env.update(JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="true",
             PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests"),
                                         env.get("PYTHONPATH", "")]))
  flags = [f for f in env.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  if devices > 1:
    flags.append(f"--xla_force_host_platform_device_count={devices}")
  env["XLA_FLAGS"] = xla_flags.with_cpu_flags(" ".join(flags), xla_flags.installed_jaxlib())
  if cache_dir is not None:
    env.update(JAX_COMPILATION_CACHE_DIR=str(cache_dir),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  return env


PYTHON = sys.executable


def free_port() -> int:
  """A localhost TCP port nobody listens on now, for a jax.distributed coordinator."""
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def train_processes(runs, timeout: float = 600) -> list[str]:
  """Runs tests/_train_processes.py once per argument list in ``runs`` (WORKDIR OUT PROCESS_ID
  NUM_PROCESSES PORT STEPS [all]), all at once; every one must exit 0. Returns their stderr."""
  processes = [subprocess.Popen([PYTHON, "tests/_train_processes.py", *map(str, args)],
                                env=subprocess_env(), cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for args in runs]
  try:
    outputs = [process.communicate(timeout=timeout) for process in processes]
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
  for process, (_, stderr) in zip(processes, outputs):
    assert process.returncode == 0, stderr[-4000:]
  return [stderr for _, stderr in outputs]
