"""Shards of a generated dataset: which scenes go where, and writing them so a crash is harmless.

Split ``split`` of ``scenes`` scenes becomes ``ceil(scenes / scenes_per_shard)`` files named as
the release names them (``released_format.shard_name``); shard k (from 1) holds scenes
``(k - 1) * scenes_per_shard`` onwards, in index order. Beside each shard,
``<shard>.factors.jsonl`` holds one JSON object of scene factors per record, in record order.

A shard is written under temporary names (``<file>.tmp``) and renamed when complete: the factors
file first, the ``.tfrecord`` last, so a ``.tfrecord`` exists only once its shard is whole.
Leftover ``.tmp`` files of an interrupted run are removed by the next run (one run at a time
per output directory).
"""

import dataclasses
import json
import math
import os
import pathlib
import re

from gqn_jax import extras
from gqn_jax import released_format

FACTORS_SUFFIX = ".factors.jsonl"
TEMPORARY_SUFFIX = ".tmp"


class ShardConflict(RuntimeError):
  """A file in the output directory that this run would not have written; says which."""


@dataclasses.dataclass(frozen=True)
class Shard:
  name: str            # dataset (family) name.
  split: str
  number: int          # 1-based, as in the file name.
  total: int           # shards in the split.
  first: int           # index of the shard's first scene in the split.
  count: int           # scenes in the shard.
  path: pathlib.Path   # the .tfrecord file.

  @property
  def indices(self) -> range:
    return range(self.first, self.first + self.count)

  @property
  def factors_path(self) -> pathlib.Path:
    return self.path.with_name(self.path.name + FACTORS_SUFFIX)


def plan(directory, name: str, split: str, scenes: int, scenes_per_shard: int) -> list[Shard]:
  """The shards of one split; ``directory`` is ``<root>/<name>``."""
  total = math.ceil(scenes / scenes_per_shard)
  split_directory = pathlib.Path(directory) / split
  return [Shard(name, split, number, total, (number - 1) * scenes_per_shard,
                min(scenes_per_shard, scenes - (number - 1) * scenes_per_shard),
                split_directory / released_format.shard_name(number, total))
          for number in range(1, total + 1)]


def check_layout(shards: list[Shard]) -> None:
  """Raises ShardConflict if the split's directory holds shards of another shard count."""
  if not shards or not shards[0].path.parent.is_dir():
    return
  pattern = re.compile(r"\d+-of-(\d+)\.tfrecord")
  for path in sorted(shards[0].path.parent.iterdir()):
    match = pattern.fullmatch(path.name)
    if match and int(match.group(1)) != shards[0].total:
      raise ShardConflict(
          f"{path} belongs to a layout of {int(match.group(1))} shards, but this run writes "
          f"{shards[0].total}; use another output directory or remove the old shards")


def is_complete(shard: Shard, *, seed: int, image_size: int) -> bool:
  """Whether the shard was already written by an identical run (so a rerun skips it).

  Raises ShardConflict when the shard exists but was written with other settings (or not by
  this generator), rather than mixing two datasets in one directory.
  """
  if not shard.path.exists():
    return False
  if not shard.factors_path.exists():
    raise ShardConflict(f"{shard.path} exists without {shard.factors_path.name}; it was not "
                        f"written by this generator")
  lines = shard.factors_path.read_text().splitlines()
  expected = {"family": shard.name, "split": shard.split, "index": shard.first, "seed": seed,
              "image_size": image_size}
  first = json.loads(lines[0]) if lines else {}
  found = {key: first.get(key) for key in expected}
  if len(lines) != shard.count or found != expected:
    raise ShardConflict(
        f"{shard.path} holds {len(lines)} scenes starting with {found}, but this run would write "
        f"{shard.count} scenes starting with {expected}; use another output directory or "
        f"remove the old shards")
  return True


def pending(directory, name: str, scenes_per_split: dict, *, scenes_per_shard: int, seed: int,
            image_size: int) -> list[Shard]:
  """The shards a run still has to write, over all splits (``{split: scenes}``)."""
  todo = []
  for split, scenes in scenes_per_split.items():
    if scenes:
      shards = plan(directory, name, split, scenes, scenes_per_shard)
      check_layout(shards)
      for shard in shards:
        for path in (shard.path, shard.factors_path):  # leftovers of an interrupted run.
          _temporary(path).unlink(missing_ok=True)
      todo += [shard for shard in shards
               if not is_complete(shard, seed=seed, image_size=image_size)]
  return todo


class ShardWriter:
  """Writes one shard's records and factors; a context manager that commits on success.

  Usage: ``with ShardWriter(shard) as writer: writer.add(record, factors)`` for each scene in
  index order. On an exception the temporary files are removed and nothing is renamed.
  """

  def __init__(self, shard: Shard):
    self.shard = shard
    self._written = 0
    self._records = None
    self._factors = None

  def __enter__(self):
    tf = extras.require("tensorflow", "scenes", "writing TFRecord shards")
    self.shard.path.parent.mkdir(parents=True, exist_ok=True)
    self._records = tf.io.TFRecordWriter(str(_temporary(self.shard.path)))
    self._factors = open(_temporary(self.shard.factors_path), "w", encoding="utf-8")
    return self

  def add(self, record: bytes, factors: dict) -> None:
    expected = self.shard.first + self._written
    if factors.get("index") != expected:
      raise ValueError(f"{self.shard.path}: scene {factors.get('index')} given where scene "
                       f"{expected} belongs")
    self._records.write(record)
    self._factors.write(json.dumps(factors, separators=(",", ":")) + "\n")
    self._written += 1

  def __exit__(self, error_type, error, traceback):
    self._records.close()
    self._factors.close()
    if error_type is not None or self._written != self.shard.count:
      for path in (self.shard.path, self.shard.factors_path):
        _temporary(path).unlink(missing_ok=True)
      if error_type is None:
        raise ValueError(f"{self.shard.path}: {self._written} scenes written, "
                         f"{self.shard.count} expected")
      return False
    os.replace(_temporary(self.shard.factors_path), self.shard.factors_path)
    os.replace(_temporary(self.shard.path), self.shard.path)
    return False


def _temporary(path: pathlib.Path) -> pathlib.Path:
  return path.with_name(path.name + TEMPORARY_SUFFIX)
