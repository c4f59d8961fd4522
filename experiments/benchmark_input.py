r"""Measures the TFDS conversion rate and the input pipeline's throughput.

1. Conversion: released-format shards -> the ``gqn`` TFDS dataset (array_record) through the Beam
   pipeline on the local DirectRunner (``--direct_workers`` processes), as ``tfds build`` runs it.
   The shards are copies of a few generated ones (real MuJoCo renders, so real JPEG sizes). Two
   builds of different sizes give the marginal rate (scenes/s, MB/s of input TFRecords) without
   the pipeline's start-up, which then extrapolates to the full rooms_ring_camera download.
2. Input pipeline: batches/s and scenes/s of ``input_pipeline.create_dataset`` over the converted
   data, at each ``--image_sizes`` and ``--batch_size``.

  make bench-input   # .venv/bin/python -m experiments.benchmark_input; writes
                     # experiments/results/benchmark_input.json

Keep it short on shared machines: the defaults take about a minute on 2 cores.
"""

import os
import pathlib
import shutil
import sys
import tempfile
import time

from experiments import harness

REPO = pathlib.Path(__file__).resolve().parents[1]

NAME = "rooms_ring_camera"


def _source(workdir: pathlib.Path, args) -> pathlib.Path:
  if args.source:
    return pathlib.Path(args.source) / NAME
  from gqn_jax import generate  # pylint: disable=g-import-not-at-top
  scenes = args.generate_scenes
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


def _build(manual: pathlib.Path, data_dir: pathlib.Path, args):
  """One conversion, as `tfds build` runs it; returns (seconds, scenes written)."""
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  with tfds.core.utils.add_sys_path(REPO / "data"):
    builder_cls = tfds.core.community.builder_cls_from_module("gqn.gqn_dataset_builder")
  builder = builder_cls(config=NAME, data_dir=str(data_dir), file_format="array_record")
  options = beam.options.pipeline_options.PipelineOptions([
      f"--runner={args.beam_runner}", "--direct_running_mode=multi_processing",
      f"--direct_num_workers={args.direct_workers}"])
  config = tfds.download.DownloadConfig(manual_dir=str(manual), beam_options=options)
  start, cpu = time.perf_counter(), harness.cpu_seconds()
  builder.download_and_prepare(download_config=config)
  seconds, cpu = time.perf_counter() - start, harness.cpu_seconds() - cpu
  scenes = sum(split.num_examples for split in builder.info.splits.values())
  return seconds, cpu, scenes, data_dir


def _conversion(workdir: pathlib.Path, source: pathlib.Path, args):
  runs = []
  for shards in args.shards:
    manual = workdir / f"manual_{shards}"
    size = _manual_dir(source, manual, shards)
    seconds, cpu, scenes, data_dir = _build(manual, workdir / f"tfds_{shards}", args)
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
        f"{marginal['mb_per_s']:.1f} MB/s wall clock with {args.direct_workers} DirectRunner "
        f"workers; start-up {marginal['startup_s']:.1f} s; {cpu_per_scene * 1e3:.2f} CPU ms "
        f"per scene = {1 / cpu_per_scene:.0f} scenes/s per idle core")
  bytes_per_scene = large["input_mb"] * 1e6 / large["scenes"]
  estimates = []
  for per_file in args.scenes_per_file:
    scenes = per_file * (args.train_files + args.test_files)
    hours = scenes / marginal["scenes_per_s"] / 3600
    cpu_hours = scenes * cpu_per_scene / 3600
    estimates.append({"scenes_per_file": per_file, "scenes": scenes,
                      "input_gb": scenes * bytes_per_scene / 1e9, "hours": hours,
                      "cpu_hours": cpu_hours})
    print(f"full {NAME} at {per_file} scenes/file: {scenes / 1e6:.2f} M scenes, "
          f"~{scenes * bytes_per_scene / 1e9:.0f} GB: {hours:.1f} h at the measured wall-clock "
          f"rate; {cpu_hours:.1f} CPU hours, i.e. {cpu_hours / args.direct_workers:.1f} h on "
          f"{args.direct_workers} idle cores")
  return {"runs": runs, "marginal": marginal, "bytes_per_scene": bytes_per_scene,
          "rooms_ring_camera_estimates": estimates}, data_dir


def _pipeline(data_dir: pathlib.Path, args):
  from gqn_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  results = []
  for workers in args.worker_counts:
    for size in args.image_sizes:
      dataset = input_pipeline.create_dataset(
          NAME, "train", data_dir=str(data_dir), global_batch_size=args.batch_size,
          image_size=size, worker_count=workers, read_threads=args.read_threads,
          process_index=0, process_count=1)
      iterator = iter(dataset)
      for _ in range(5):  # warm up threads, workers and file handles.
        next(iterator)
      batches, start, cpu = 0, time.perf_counter(), harness.cpu_seconds()
      while time.perf_counter() - start < args.seconds:
        next(iterator)
        batches += 1
      seconds, cpu = time.perf_counter() - start, harness.cpu_seconds() - cpu
      scenes = batches * args.batch_size
      results.append({"image_size": size, "batch_size": args.batch_size,
                      "worker_count": workers, "read_threads": args.read_threads,
                      "batches_per_s": batches / seconds, "scenes_per_s": scenes / seconds,
                      "cpu_us_per_scene": cpu / scenes * 1e6,
                      "load_average": os.getloadavg()[0]})
      print(f"pipeline: {size} px, batch {args.batch_size}, {workers} workers, "
            f"{args.read_threads} threads: {batches / seconds:.0f} batches/s, "
            f"{scenes / seconds:.0f} scenes/s; {cpu / scenes * 1e6:.0f} CPU us per scene "
            f"(load average {os.getloadavg()[0]:.1f})")
      del iterator
  return results


def main(argv=None):
  parser = harness.parser(__doc__, output="benchmark_input.json")
  parser.add_argument("--source", type=pathlib.Path,
                      help="directory with rooms_ring_camera/{train,test} shards to copy "
                      "(default: generate --generate_scenes scenes into a temporary directory)")
  parser.add_argument("--generate_scenes", type=int, default=100,
                      help="scenes rendered as the source")
  parser.add_argument("--shards", type=int, nargs=2, default=[8, 24],
                      help="train shard copies of the two builds")
  parser.add_argument("--direct_workers", type=int, default=2,
                      help="DirectRunner worker processes")
  parser.add_argument("--beam_runner", default="DirectRunner",
                      help="Beam runner; Beam's DirectRunner first tries the Prism runner (a "
                      "downloaded binary) and falls back to the FnApiRunner, which this names "
                      "directly")
  parser.add_argument("--image_sizes", type=int, nargs="+", default=[32, 64],
                      help="pipeline output sizes")
  parser.add_argument("--batch_size", type=int, default=8,
                      help="global batch size of the pipeline")
  parser.add_argument("--seconds", type=float, default=8.0,
                      help="measuring time per pipeline setting")
  parser.add_argument("--worker_counts", type=int, nargs="+", default=[0],
                      help="grain worker processes to try")
  parser.add_argument("--read_threads", type=int, default=4,
                      help="grain reading threads per process")
  parser.add_argument("--train_files", type=int, default=2160,
                      help="rooms_ring_camera train files of the release")
  parser.add_argument("--test_files", type=int, default=240,
                      help="rooms_ring_camera test files of the release")
  parser.add_argument("--scenes_per_file", type=int, nargs="+", default=[1000, 3700],
                      help="assumed scenes per released file, for the estimate")
  args = parser.parse_args(argv)
  with tempfile.TemporaryDirectory(prefix="gqn_benchmark_input_") as workdir:
    workdir = pathlib.Path(workdir)
    source = _source(workdir, args)
    conversion, data_dir = _conversion(workdir, source, args)
    pipeline = _pipeline(data_dir, args)
  figures = {"conversion": conversion, "pipeline": pipeline, "python": sys.version.split()[0]}
  harness.write_results(args.output, figures)


if __name__ == "__main__":
  main()
