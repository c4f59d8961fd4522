"""Rendering in helper processes that never load TensorFlow.

Debian's OSMesa links LLVM 15, TensorFlow carries its own LLVM, and whichever of the two loads
second crashes the process in LLVM's static initializers (a segfault on ``import tensorflow``
after ``import mujoco`` with ``MUJOCO_GL=osmesa``, or a bad free the other way round). So scenes
are rendered only in child processes started as ``python -m gqn_jax.scenes.worker``: they import
mujoco but never TensorFlow, whatever the parent imported. (``multiprocessing``'s spawn would
re-import the parent's main script, and with it whatever that imports.)

The parent sends ``(function name, args)`` pickled over the child's stdin and reads the pickled
result from its stdout; :class:`RenderPool` spreads calls over several children and returns
results in call order.
"""

import atexit
import collections
import concurrent.futures
import os
import pathlib
import pickle
import queue
import signal
import subprocess
import sys
import threading
import traceback
from typing import Iterable, Iterator

_WORKER_ENV = "GQN_JAX_RENDER_WORKER"  # set in the children.


class WorkerError(RuntimeError):
  """A call that failed in a render worker; the message carries the worker's traceback."""


def in_worker() -> bool:
  """Whether this process is a render worker (where rendering in-process is safe)."""
  return os.environ.get(_WORKER_ENV) == "1"


def _functions():
  """The calls a worker serves, by name (a fixed list: workers run nothing else)."""
  from gqn_jax.scenes import scene  # pylint: disable=g-import-not-at-top
  return {
      "render_scene": scene.render_scene,
      "scene_jpegs": scene.scene_jpegs,
      "render_factors": scene.render_factors,
      "geom_masks": scene.geom_masks,
  }


class RenderProcess:
  """One render worker child process; :meth:`call` runs a named function there."""

  def __init__(self):
    package_root = str(pathlib.Path(__file__).resolve().parents[2])
    env = dict(os.environ, **{_WORKER_ENV: "1"})
    # One llvmpipe rasterizer thread per worker: parallelism comes from the workers, and a
    # 64 px frame is too small to split (by default llvmpipe starts a thread per core).
    env.setdefault("LP_NUM_THREADS", "1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    self._process = subprocess.Popen([sys.executable, "-m", "gqn_jax.scenes.worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    self._broken = False

  def call(self, function: str, *args):
    described = f"{function}{_short(args)}"
    try:
      pickle.dump((function, args), self._process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
      self._process.stdin.flush()
      status, value = pickle.load(self._process.stdout)
    except (EOFError, OSError, pickle.UnpicklingError) as error:
      self._broken = True
      try:
        code = self._process.wait(timeout=5)
      except subprocess.TimeoutExpired:
        code = None
      raise WorkerError(f"render worker stopped (exit code {code}) during {described}: "
                        f"{error!r}") from None
    if status != "ok":
      raise WorkerError(f"{described} failed in a render worker:\n{value}")
    return value

  def alive(self) -> bool:
    return not self._broken and self._process.poll() is None

  def close(self) -> None:
    if self._process.poll() is None:
      try:
        self._process.stdin.close()
        self._process.wait(timeout=10)
      except (OSError, subprocess.TimeoutExpired):
        self._process.kill()
        self._process.wait()


class RenderPool:
  """``workers`` render processes; ``imap`` calls a function on many argument tuples."""

  def __init__(self, workers: int):
    self._idle = queue.Queue()
    self._lock = threading.Lock()
    self._closed = False
    self._processes = [RenderProcess() for _ in range(workers)]
    for process in self._processes:
      self._idle.put(process)
    self._threads = concurrent.futures.ThreadPoolExecutor(workers)
    self._workers = workers

  def call(self, function: str, *args):
    process = self._idle.get()
    try:
      return process.call(function, *args)
    finally:
      if not process.alive() and not self._closed:  # replace a crashed worker.
        replacement = RenderProcess()
        with self._lock:
          self._processes[self._processes.index(process)] = replacement
        process = replacement
      self._idle.put(process)

  def imap(self, function: str, tasks: Iterable[tuple]) -> Iterator:
    """Yields ``function(*task)`` for each task, in task order, a few tasks ahead."""
    pending = collections.deque()
    for task in tasks:
      pending.append(self._threads.submit(self.call, function, *task))
      if len(pending) > 2 * self._workers:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()

  def close(self) -> None:
    self._closed = True
    self._threads.shutdown(wait=False, cancel_futures=True)
    with self._lock:
      processes = list(self._processes)
    for process in processes:
      process.close()

  def __enter__(self):
    return self

  def __exit__(self, *error):
    self.close()


_shared = None
_shared_lock = threading.Lock()


def call(function: str, *args):
  """Runs a worker function: here if this is a render worker, else in a shared one."""
  global _shared
  if in_worker():
    return _functions()[function](*args)
  with _shared_lock:
    if _shared is None:
      _shared = RenderPool(1)
  return _shared.call(function, *args)


def _short(args, limit: int = 200) -> str:
  text = repr(args)
  return text if len(text) <= limit else text[:limit] + "...)"


@atexit.register
def _close_shared() -> None:
  if _shared is not None:
    _shared.close()


def main() -> None:
  """The worker loop: requests from stdin, results to stdout, until stdin closes."""
  requests = sys.stdin.buffer
  # The protocol owns the real stdout; anything else printed (by Python or by C libraries
  # writing to fd 1) goes to stderr instead of corrupting it.
  results = os.fdopen(os.dup(1), "wb")
  os.dup2(2, 1)
  sys.stdout = sys.stderr
  # Ctrl-C reaches the whole process group; the parent handles it and closes our stdin.
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  functions = _functions()
  while True:
    try:
      function, args = pickle.load(requests)
    except EOFError:
      return
    try:
      reply = ("ok", functions[function](*args))
    except Exception:  # pylint: disable=broad-except  (reported to the parent)
      reply = ("error", traceback.format_exc())
    pickle.dump(reply, results, protocol=pickle.HIGHEST_PROTOCOL)
    results.flush()


if __name__ == "__main__":
  os.environ[_WORKER_ENV] = "1"
  main()
