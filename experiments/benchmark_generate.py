"""Measures the scene generator's throughput in frames per second, for each family.

  make bench-generate   # .venv/bin/python -m experiments.benchmark_generate: all families,
                        # 64 px, 2 workers, into experiments/results/benchmark_generate.json

Two figures per family:

* ``render_frames_per_s``: steady state of the workers (render + JPEG), timed after each worker
  has rendered its first scene, so process start-up and model compilation are left out;
* ``dataset_frames_per_s``: ``generate.write_dataset`` end to end for the same scenes into a
  temporary directory: worker start-up, TFRecord encoding and writing included (the first family
  also pays TensorFlow's import in this process).

The machine's load average is recorded too: on a shared machine other jobs take cores.
"""

import json
import os
import tempfile
import time

from experiments import harness
from gqn_jax import generate
from gqn_jax.scenes import FAMILIES
from gqn_jax.scenes import worker


def render_rate(name: str, scenes: int, image_size: int, workers: int) -> float:
  """Frames per second of ``workers`` warm render workers."""
  frames = FAMILIES[name].frames_per_scene
  with worker.RenderPool(workers) as pool:
    warm_up = [(name, "train", i, image_size, 0) for i in range(workers)]
    list(pool.imap("scene_jpegs", warm_up))
    tasks = [(name, "train", workers + i, image_size, 0) for i in range(scenes)]
    start = time.perf_counter()
    for _ in pool.imap("scene_jpegs", tasks):
      pass
    return scenes * frames / (time.perf_counter() - start)


def dataset_rate(name: str, scenes: int, image_size: int, workers: int) -> float:
  """Frames per second of write_dataset, start-up included."""
  frames = FAMILIES[name].frames_per_scene
  with tempfile.TemporaryDirectory() as root:
    start = time.perf_counter()
    generate.write_dataset(name, root, train_scenes=scenes, test_scenes=0, image_size=image_size,
                           workers=workers, progress=False)
    return scenes * frames / (time.perf_counter() - start)


def main(argv=None):
  parser = harness.parser(__doc__, output="benchmark_generate.json")
  parser.add_argument("--families", nargs="+", default=sorted(FAMILIES), choices=sorted(FAMILIES))
  parser.add_argument("--image_size", type=int, default=64)
  parser.add_argument("--workers", type=int, default=2)
  parser.add_argument("--scenes", type=int, default=150, help="scenes timed per family")
  args = parser.parse_args(argv)
  results = []
  for name in args.families:
    result = {
        "family": name, "image_size": args.image_size, "workers": args.workers,
        "scenes": args.scenes, "frames_per_scene": FAMILIES[name].frames_per_scene,
        "render_frames_per_s": round(render_rate(name, args.scenes, args.image_size,
                                                 args.workers), 1),
        "dataset_frames_per_s": round(dataset_rate(name, args.scenes, args.image_size,
                                                   args.workers), 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "gl_backend": os.environ.get("MUJOCO_GL") or "auto",
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result), flush=True)
    results.append(result)
  harness.write_results(args.output, results)


if __name__ == "__main__":
  main()
