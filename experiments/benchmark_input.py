r"""Measures the TFDS conversion rate and the input pipeline's throughput.

1. Conversion: released-format shards -> the ``gqn`` TFDS dataset (array_record) through the Beam
   pipeline on the local DirectRunner (``--direct_workers`` processes), as ``tfds build`` runs it.
   The shards are copies of a few generated ones (real MuJoCo renders, so real JPEG sizes). Two
   builds of different sizes give the marginal rate (scenes/s, MB/s of input TFRecords) without
   the pipeline's start-up, which then extrapolates to the full rooms_ring_camera download.
2. Input pipeline: batches/s and scenes/s of ``input_pipeline.create_dataset`` over the converted
   data, at each ``--image_sizes`` and ``--batch_size``.

  .venv/bin/python experiments/benchmark_input.py --output=/tmp/benchmark_input.json

Keep it short on shared machines: the defaults take about a minute on 2 cores.
"""

import json
import os
import pathlib
import resource
import shutil
import sys
import tempfile
import time

from absl import app
from absl import flags

REPO = pathlib.Path(__file__).resolve().parents[1]

_SOURCE = flags.DEFINE_string(
    "source", None, "Directory with rooms_ring_camera/{train,test} shards to copy; default: "
    "generate --generate_scenes scenes into a temporary directory.")
_GENERATE_SCENES = flags.DEFINE_integer("generate_scenes", 100, "Scenes rendered as the source.")
_SHARDS = flags.DEFINE_list("shards", ["8", "24"], "Train shard copies of the two builds.")
_DIRECT_WORKERS = flags.DEFINE_integer("direct_workers", 2, "DirectRunner worker processes.")
_BEAM_RUNNER = flags.DEFINE_string(
    "beam_runner", "DirectRunner", "Beam runner; Beam 2.77's DirectRunner first tries the Prism "
    "runner (a downloaded binary) and falls back to the FnApiRunner, which FnApiRunner names "
    "directly.")
_IMAGE_SIZES = flags.DEFINE_list("image_sizes", ["32", "64"], "Pipeline output sizes.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Global batch size of the pipeline.")
_SECONDS = flags.DEFINE_float("seconds", 8.0, "Measuring time per pipeline setting.")
_WORKER_COUNTS = flags.DEFINE_list("worker_counts", ["0"], "grain worker processes to try.")
_READ_THREADS = flags.DEFINE_integer("read_threads", 4, "grain reading threads per process.")
_TRAIN_FILES = flags.DEFINE_integer("train_files", 2160, "rooms_ring_camera train files.")
_TEST_FILES = flags.DEFINE_integer("test_files", 240, "rooms_ring_camera test files.")
_SCENES_PER_FILE = flags.DEFINE_list(
    "scenes_per_file", ["1000", "3700"], "Assumed scenes per released file for the estimate.")
_OUTPUT = flags.DEFINE_string("output", None, "Write the figures as JSON here.")

NAME = "rooms_ring_camera"


def _cpu_seconds() -> float:
  """CPU time of this process and its finished children (Beam's worker processes).

  Other users of the machine slow the wall clock but not this, so it gives the cost per scene
  on an idle machine; the wall-clock rates are also reported, with the load average.
  """
  own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                       resource.RUSAGE_CHILDREN))
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _source(workdir: pathlib.Path) -> pathlib.Path:
  if _SOURCE.value:
    return pathlib.Path(_SOURCE.value) / NAME
  from gqn_jax import generate  # pylint: disable=g-import-not-at-top
  scenes = _GENERATE_SCENES.value
  return generate.write_dataset(NAME, workdir / "generated", train_scenes=scenes,
                                test_scenes=max(1, scenes // 10), scenes_per_shard=scenes,
                                progress=False)


def _manual_dir(source: pathlib.Path, target: pathlib.Path, train_shards: int):
  """<target>/rooms_ring_camera with train_shards copies of the first source train shard."""
  from gqn_jax import released_format  # pylint: disable=g-import-not-at-top
  from gqn_jax.data import scene_records  # pylint: disable=g-import-not-at-top
  shard = scene_records.list_shards(source / "train")[0]
  test = scene_records.list_shards(source / "test")[0]
  for index in range(train_shards):
    destination = target / NAME / "train" / released_format.shard_name(index + 1, train_shards)
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shard, destination)
  (target / NAME / "test").mkdir(parents=True, exist_ok=True)
  shutil.copyfile(test, target / NAME / "test" / released_format.shard_name(1, 1))
  files = list((target / NAME).rglob("*.tfrecord"))
  return sum(f.stat().st_size for f in files)


def _build(manual: pathlib.Path, data_dir: pathlib.Path):
  """One conversion, as `tfds build` runs it; returns (seconds, scenes written)."""
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  with tfds.core.utils.add_sys_path(REPO / "data"):
    builder_cls = tfds.core.community.builder_cls_from_module("gqn.gqn_dataset_builder")
  builder = builder_cls(config=NAME, data_dir=str(data_dir), file_format="array_record")
  options = beam.options.pipeline_options.PipelineOptions([
      f"--runner={_BEAM_RUNNER.value}", "--direct_running_mode=multi_processing",
      f"--direct_num_workers={_DIRECT_WORKERS.value}"])
  config = tfds.download.DownloadConfig(manual_dir=str(manual), beam_options=options)
  start, cpu = time.perf_counter(), _cpu_seconds()
  builder.download_and_prepare(download_config=config)
  seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
  scenes = sum(split.num_examples for split in builder.info.splits.values())
  return seconds, cpu, scenes, data_dir


def _conversion(workdir: pathlib.Path, source: pathlib.Path):
  runs = []
  for shards in (int(s) for s in _SHARDS.value):
    manual = workdir / f"manual_{shards}"
    size = _manual_dir(source, manual, shards)
    seconds, cpu, scenes, data_dir = _build(manual, workdir / f"tfds_{shards}")
    runs.append({"train_shards": shards, "scenes": scenes, "input_mb": size / 1e6,
                 "seconds": seconds, "cpu_seconds": cpu, "scenes_per_s": scenes / seconds,
                 "mb_per_s": size / 1e6 / seconds, "load_average": os.getloadavg()[0]})
    print(f"conversion: {scenes} scenes, {size / 1e6:.1f} MB in {seconds:.1f} s, "
          f"{cpu:.1f} CPU s ({scenes / seconds:.0f} scenes/s, {size / 1e6 / seconds:.1f} MB/s "
          f"overall; load average {os.getloadavg()[0]:.1f})")
  small, large = runs[0], runs[-1]
  extra = large["seconds"] - small["seconds"]
  extra_scenes = large["scenes"] - small["scenes"]
  cpu_per_scene = (large["cpu_seconds"] - small["cpu_seconds"]) / extra_scenes
  marginal = {"scenes_per_s": extra_scenes / extra,
              "mb_per_s": (large["input_mb"] - small["input_mb"]) / extra,
              "startup_s": small["seconds"] - small["scenes"] * extra / extra_scenes,
              "cpu_ms_per_scene": cpu_per_scene * 1e3,
              "scenes_per_cpu_s": 1 / cpu_per_scene}
  print(f"conversion, marginal: {marginal['scenes_per_s']:.0f} scenes/s, "
        f"{marginal['mb_per_s']:.1f} MB/s wall clock with {_DIRECT_WORKERS.value} DirectRunner "
        f"workers; start-up {marginal['startup_s']:.1f} s; {cpu_per_scene * 1e3:.2f} CPU ms "
        f"per scene = {1 / cpu_per_scene:.0f} scenes/s per idle core")
  bytes_per_scene = large["input_mb"] * 1e6 / large["scenes"]
  estimates = []
  for per_file in (int(s) for s in _SCENES_PER_FILE.value):
    scenes = per_file * (_TRAIN_FILES.value + _TEST_FILES.value)
    hours = scenes / marginal["scenes_per_s"] / 3600
    cpu_hours = scenes * cpu_per_scene / 3600
    estimates.append({"scenes_per_file": per_file, "scenes": scenes,
                      "input_gb": scenes * bytes_per_scene / 1e9, "hours": hours,
                      "cpu_hours": cpu_hours})
    print(f"full {NAME} at {per_file} scenes/file: {scenes / 1e6:.2f} M scenes, "
          f"~{scenes * bytes_per_scene / 1e9:.0f} GB: {hours:.1f} h at the measured wall-clock "
          f"rate; {cpu_hours:.1f} CPU hours, i.e. {cpu_hours / _DIRECT_WORKERS.value:.1f} h on "
          f"{_DIRECT_WORKERS.value} idle cores")
  return {"runs": runs, "marginal": marginal, "bytes_per_scene": bytes_per_scene,
          "rooms_ring_camera_estimates": estimates}, data_dir


def _pipeline(data_dir: pathlib.Path):
  from gqn_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  results = []
  for workers in (int(w) for w in _WORKER_COUNTS.value):
    for size in (int(s) for s in _IMAGE_SIZES.value):
      dataset = input_pipeline.create_dataset(
          NAME, "train", data_dir=str(data_dir), global_batch_size=_BATCH_SIZE.value,
          image_size=size, worker_count=workers, read_threads=_READ_THREADS.value,
          process_index=0, process_count=1)
      iterator = iter(dataset)
      for _ in range(5):  # warm up threads, workers and file handles.
        next(iterator)
      batches, start, cpu = 0, time.perf_counter(), _cpu_seconds()
      while time.perf_counter() - start < _SECONDS.value:
        next(iterator)
        batches += 1
      seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
      scenes = batches * _BATCH_SIZE.value
      results.append({"image_size": size, "batch_size": _BATCH_SIZE.value,
                      "worker_count": workers, "read_threads": _READ_THREADS.value,
                      "batches_per_s": batches / seconds, "scenes_per_s": scenes / seconds,
                      "cpu_us_per_scene": cpu / scenes * 1e6,
                      "load_average": os.getloadavg()[0]})
      print(f"pipeline: {size} px, batch {_BATCH_SIZE.value}, {workers} workers, "
            f"{_READ_THREADS.value} threads: {batches / seconds:.0f} batches/s, "
            f"{scenes / seconds:.0f} scenes/s; {cpu / scenes * 1e6:.0f} CPU us per scene "
            f"(load average {os.getloadavg()[0]:.1f})")
      del iterator
  return results


def main(argv):
  del argv
  with tempfile.TemporaryDirectory(prefix="gqn_benchmark_input_") as workdir:
    workdir = pathlib.Path(workdir)
    source = _source(workdir)
    conversion, data_dir = _conversion(workdir, source)
    pipeline = _pipeline(data_dir)
  figures = {"conversion": conversion, "pipeline": pipeline, "python": sys.version.split()[0]}
  if _OUTPUT.value:
    pathlib.Path(_OUTPUT.value).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
  app.run(main)
