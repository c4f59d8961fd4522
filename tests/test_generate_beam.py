"""The Beam pipeline (DirectRunner) writes exactly the files the multiprocessing path writes."""

from gqn_jax import generate
from gqn_jax.scenes import beam_pipeline

SETTINGS = dict(train_scenes=5, test_scenes=3, scenes_per_shard=2, image_size=24, seed=7)


def _files(directory):
  return {str(p.relative_to(directory)): p.read_bytes()
          for p in sorted(directory.rglob("*")) if p.is_file()}


def test_beam_writes_the_same_files_as_multiprocessing(tmp_path):
  name = "shepard_metzler_7_parts"
  local = generate.write_dataset(name, tmp_path / "local", workers=2, progress=False, **SETTINGS)
  beam = beam_pipeline.run(name, tmp_path / "beam", **SETTINGS,
                           pipeline_options=["--direct_num_workers=2",
                                             "--direct_running_mode=multi_threading"])
  local_files, beam_files = _files(local), _files(beam)
  assert sorted(beam_files) == sorted(local_files)
  assert len(local_files) == 2 * (3 + 2)  # shards and their factors files.
  for path, content in local_files.items():
    assert beam_files[path] == content, path


def test_beam_rerun_skips_complete_shards(tmp_path):
  name = "shepard_metzler_5_parts"
  directory = beam_pipeline.run(name, tmp_path, **SETTINGS)
  shard = directory / "train/2-of-3.tfrecord"
  content = shard.read_bytes()
  stamps = {p: p.stat().st_mtime_ns for p in directory.rglob("*.tfrecord") if p != shard}
  shard.unlink()
  beam_pipeline.run(name, tmp_path, **SETTINGS)
  assert shard.read_bytes() == content
  assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
