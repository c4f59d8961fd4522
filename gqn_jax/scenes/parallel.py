"""Renders many scenes over render worker processes, in order, with a progress bar.

The workers are ``worker.RenderProcess`` children (never this process: see ``worker.py``). Each
keeps its renderer between scenes (``renderer.get``), so a GL context is made once per worker,
not once per scene.
"""

import os
from typing import Iterator, Sequence

from gqn_jax.scenes import worker


def default_workers() -> int:
  """The CPU cores this process may use."""
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def render_jpegs(tasks: Sequence[tuple], *, workers: int, progress: bool = True,
                 description: str = "") -> Iterator[tuple]:
  """Yields ``scene.scene_jpegs(*task)`` for each task, in task order."""
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  if not tasks:
    return
  with tqdm(total=len(tasks), unit="scene", desc=description, disable=not progress) as bar, \
      worker.RenderPool(min(workers, len(tasks))) as pool:
    for result in pool.imap("scene_jpegs", tasks):
      yield result
      bar.update()
