"""Stored scenes for evaluation and figures: frames, cameras, and the factors they were made from.

Batches of the input pipeline hold a few frames of each scene, drawn per batch, and forget which
scene it was. Evaluation and figures need each scene to get the same views whatever batch it is
in, views nested as context grows (uncertainty), more frames of one scene (a fly-around's
context), and the factors a generated scene was made from (representation space). So scenes are
read here straight from the prepared TFDS ``gqn`` dataset (array_record, no TensorFlow), frames
decoded only when asked for, and each scene's ``scene`` feature, ``<split>/<shard file>#<record>``,
leads to its factors in ``<root>/<name>/<split>/<shard file>.factors.jsonl`` (written by
``gqn_jax.generate``; released datasets have none), checked to belong to the scene.
"""

import dataclasses
import functools
import json
import os
import pathlib

import numpy as np

from gqn_jax import input_pipeline
from gqn_jax import poses as poses_lib
from gqn_jax.data import frames as frames_lib
from gqn_jax.scenes import shards

GENERATED_ROOT_ENV = "GQN_GENERATED_DIR"  # as data/gqn's builder reads it.
DEFAULT_GENERATED_ROOT = pathlib.Path(__file__).resolve().parents[2] / "data" / "generated"


@dataclasses.dataclass(frozen=True)
class Scene:
  """One stored scene. Frames stay JPEG until asked for (a mazes scene has 300)."""
  name: str               # '<split>/<shard file>#<record index>'
  jpegs: tuple            # S JPEG byte strings, as stored.
  cameras: np.ndarray     # float32 [S, 5]: x, y, z, yaw, pitch
  poses: np.ndarray       # float32 [S, 7], poses.camera_to_pose in the model's order
  image_size: int         # pixels per side of the images returned.
  factors: dict | None    # the generator's factors, when asked for and available.

  def images(self, indices=None) -> np.ndarray:
    """float32 [n, H, W, 3] in [0, 1]: frames ``indices`` (default all), decoded and resized."""
    indices = range(len(self.jpegs)) if indices is None else np.asarray(indices).reshape(-1)
    frames = np.stack([frames_lib.decode_jpeg(self.jpegs[i], f"{self.name}, frame {i}")
                       for i in indices])
    return np.clip(frames_lib.resize(frames.astype(np.float32) / 255.0, self.image_size),
                   0.0, 1.0)

  def views(self, seed: int, count: int) -> np.ndarray:
    """``count`` distinct frame indices of this scene, a fixed function of (seed, name)."""
    if not 1 <= count <= len(self.jpegs):
      raise ValueError(f"{self.name}: cannot draw {count} distinct views of "
                       f"{len(self.jpegs)} frames")
    rng = np.random.default_rng([seed, *self.name.encode()])
    return rng.permutation(len(self.jpegs))[:count]


def context_and_query(scenes, views: int, seed: int):
  """Each scene's ``views`` context views and a query view, drawn by ``Scene.views(seed, K + 1)``.

  Returns (context images [N, K, H, W, 3], context poses [N, K, 7], query images [N, H, W, 3],
  query poses [N, 7]). The first M of the K context views are the views M would draw.
  """
  chosen = [scene.views(seed, views + 1) for scene in scenes]
  images = [scene.images(c) for scene, c in zip(scenes, chosen)]
  return (np.stack([i[:views] for i in images]),
          np.stack([s.poses[c[:views]] for s, c in zip(scenes, chosen)]),
          np.stack([i[views] for i in images]),
          np.stack([s.poses[c[views]] for s, c in zip(scenes, chosen)]))


def default_scenes_dir() -> pathlib.Path:
  """Where gqn_jax.generate wrote the scenes TFDS built from: $GQN_GENERATED_DIR, data/generated."""
  return pathlib.Path(os.environ.get(GENERATED_ROOT_ENV, DEFAULT_GENERATED_ROOT))


def source_name(dataset: str) -> str:
  """TFDS config name -> the generator's family name.

  'generated_rooms_ring_camera-variant' and 'gqn/rooms_ring_camera:1.0.0' -> 'rooms_ring_camera'.
  """
  parts = dataset.split(":")[0].split("/")  # [config] or ['gqn', config(, version)]
  config = parts[1] if len(parts) > 1 else parts[0]
  return config.split("-", 1)[0].removeprefix(input_pipeline.GENERATED_PREFIX)


@functools.lru_cache(maxsize=8)
def _source(dataset: str, split: str, data_dir):
  """(TFDS builder, random-access source of serialized scenes) of a prepared split.

  Cached: evaluation reads a split a batch at a time.
  """
  return input_pipeline.open_split(dataset, split, data_dir)


def split_size(dataset: str, split: str, data_dir) -> int:
  """Scenes in a prepared split."""
  return len(_source(dataset, split, data_dir)[1])


def read_scenes(dataset: str, split: str, data_dir, *, count: int, image_size: int,
                pose_order: poses_lib.PoseOrder = "sin_cos", first: int = 0,
                with_factors: bool = False, scenes_dir=None) -> list[Scene]:
  """Scenes ``first .. first + count - 1`` of ``split`` in stored order.

  With ``with_factors``, each scene's factors come from its sidecar under ``scenes_dir`` (default:
  see ``factor_roots``), checked to be this scene's (``scene_factors``).

  Raises FileNotFoundError naming the dataset when it is not prepared under ``data_dir``,
  ValueError when the split has fewer scenes, and FileNotFoundError naming the sidecar files
  tried when a scene's factors are not found.
  """
  builder, source = _source(dataset, split, data_dir)
  name = builder.info.full_name
  if count < 1 or first < 0 or first + count > len(source):
    raise ValueError(f"{name} {split} holds {len(source)} scenes; scenes {first}..."
                     f"{first + count - 1} were asked for")
  frames_per_scene = builder.info.features["frames"].shape[0]
  roots = factor_roots(scenes_dir) if with_factors else []
  result = []
  for index in range(first, first + count):
    where = f"{name} {split}, record {index}"
    jpegs, cameras, scene = input_pipeline.parse_scene(source[index], frames_per_scene, where)
    factors = (scene_factors(roots, source_name(dataset), scene, cameras) if with_factors
               else None)
    result.append(Scene(scene or where, tuple(jpegs), cameras,
                        poses_lib.camera_to_pose(cameras, pose_order).astype(np.float32),
                        image_size, factors))
  return result


def factor_roots(scenes_dir=None) -> list[pathlib.Path]:
  """Roots to look for factor sidecars under: ``scenes_dir`` alone when given, else the default
  root and its subdirectories (``make demo`` writes to data/generated/demo)."""
  if scenes_dir:
    return [pathlib.Path(scenes_dir)]
  root = default_scenes_dir()
  below = sorted(path for path in root.iterdir() if path.is_dir()) if root.is_dir() else []
  return [root, *below]


def scene_factors(roots, family: str, scene: str, cameras) -> dict:
  """The factors of scene '<split>/<shard file>#<record>' from its shard's sidecar file.

  Every generation run names its shards alike, so a sidecar is taken only if its factors are
  this scene's: the generator's record of (family, split, index, seed) is sampled again (no
  rendering) and its cameras must be the stored ``cameras`` [S, 5]. The first root whose
  sidecar passes wins; FileNotFoundError lists what was tried.
  """
  try:
    location, record = scene.rsplit("#", 1)
    split, shard = location.split("/", 1)
    record = int(record)
  except ValueError:
    raise ValueError(f"scene name {scene!r} is not '<split>/<shard file>#<record>'") from None
  tried = []
  for root in roots:
    path = pathlib.Path(root) / family / split / (shard + shards.FACTORS_SUFFIX)
    lines = _sidecar(path)
    if record >= len(lines):
      tried.append(f"{path} ({'missing' if not lines else f'{len(lines)} scenes'})")
      continue
    factors = json.loads(lines[record])
    if belongs_to(factors, cameras):
      return factors
    tried.append(f"{path} (written by another generation run: its cameras differ)")
  raise FileNotFoundError(
      f"no factors for scene {scene}; tried {', '.join(tried) or 'nothing'}. Scene factors "
      f"exist only for scenes written by gqn_jax.generate: pass --scenes_dir=<the root it "
      f"wrote to> (default ${GENERATED_ROOT_ENV} or data/generated, and the directories in it)")


def belongs_to(factors: dict, cameras) -> bool:
  """Whether the generator's ``factors`` describe the scene seen from ``cameras`` [S, 5].

  Factors without the generator's (family, split, index, seed) cannot be checked and pass.
  """
  from gqn_jax.scenes import scene as scene_lib  # pylint: disable=g-import-not-at-top
  if not all(key in factors for key in ("family", "split", "index", "seed")):
    return True
  _, expected = scene_lib.sample_scene(factors["family"], factors["split"], factors["index"],
                                       factors["seed"])
  cameras = np.asarray(cameras, np.float32)
  return expected.shape == cameras.shape and bool(np.allclose(expected, cameras, atol=1e-5))


@functools.lru_cache(maxsize=64)
def _sidecar(path: pathlib.Path) -> tuple[str, ...]:
  """The lines of a factors file; none if it does not exist."""
  if not path.exists():
    return ()
  return tuple(path.read_text(encoding="utf-8").splitlines())
