"""Batches of GQN scenes for training and evaluation: grain over the TFDS ``gqn`` dataset.

Reads the array_record files that ``tfds build data/gqn`` writes (no TensorFlow in the process),
splits them between JAX processes, shuffles, batches and decodes::

  dataset = input_pipeline.create_dataset(
      "rooms_ring_camera", "train", data_dir="data/tfds", global_batch_size=36, image_size=64)
  iterator = iter(dataset)
  batch = next(iterator)            # this process's slice of the global batch
  state = iterator.get_state()      # a JSON-serializable dict; save it with the checkpoint
  ...
  iterator = iter(dataset)          # the same create_dataset arguments, after a restart
  iterator.set_state(state)         # continues with the batch that would have come next

(with orbax: ``grain.checkpoint.CheckpointSave(iterator)`` / ``CheckpointRestore(iterator)``).

Every batch is a dict of NumPy arrays of the model's batch contract (``model.batch_spec``),
with static shapes (K context views), so one compiled step serves every number of context
views: the mask is True for the M real views, which come first; the other K - M views and
poses are zeros.

B is the per-process batch, global_batch_size / jax.process_count(). Per batch, M ~ U{1..K}
(the same M on every process) unless ``num_context_views`` fixes it; per scene, M + 1 distinct
frames are drawn, the last one the query, as in DeepMind's reader. Poses come from
``poses.camera_to_pose``. The scenes of global batch b and all draws are functions of (seed, b,
row of the global batch) only, so a resumed iterator yields exactly the batches of an
uninterrupted run, and process p of P yields rows [p B, (p + 1) B) of the same global batches
for any P.
"""

import dataclasses
import os

import grain
import numpy as np

from gqn_jax import extras
from gqn_jax import poses
from gqn_jax import released_format
from gqn_jax.data import frames as frames_lib
from gqn_jax.released_format import RecordError

TFDS_NAME = "gqn"
GENERATED_PREFIX = "generated_"


def create_dataset(name_or_builder, split: str, *, data_dir=None, global_batch_size: int,
                   image_size: int, max_context_views: int | None = None,
                   num_context_views: int | None = None, pose_order: poses.PoseOrder = "sin_cos",
                   seed: int = 0, shuffle: bool = True, num_epochs: int | None = None,
                   worker_count: int = 0, read_threads: int = 4, prefetch_batches: int = 8,
                   process_index: int | None = None,
                   process_count: int | None = None) -> grain.IterDataset:
  """A grain dataset of batches (see the module docstring).

  Args:
    name_or_builder: a prepared ``gqn`` config (``"rooms_ring_camera"``,
      ``"generated_shepard_metzler_5_parts"``, ``"gqn/mazes:1.0.0"``) or a TFDS builder.
    split: ``"train"``, ``"test"`` or a TFDS split expression (``"train[:10%]"``).
    data_dir: where ``tfds build`` wrote it (``--data_dir``); None for the TFDS default.
    global_batch_size: scenes per step over all processes.
    image_size: pixels per side of the returned images.
    max_context_views: K; default the released dataset's (released_format.DATASETS).
    num_context_views: a fixed M in 1..K for every batch (evaluation); None draws M ~ U{1..K}.
    pose_order: order of the sin/cos pairs, see poses.camera_to_pose.
    seed: seeds the shuffle and all draws.
    shuffle: shuffle scenes (each epoch differently); False keeps the stored order.
    num_epochs: passes over the split; None repeats forever.
    worker_count: decoding processes (grain mp_prefetch); 0 decodes in this process.
    read_threads: threads reading and decoding batches in each process.
    prefetch_batches: batches decoded ahead.
    process_index, process_count: this process's share; default jax.process_index() and
      jax.process_count(). Process i reads rows [i * B, (i + 1) * B) of every global batch.
  """
  builder, source = open_split(name_or_builder, split, data_dir)
  layout = _layout(builder, max_context_views)
  if process_index is None or process_count is None:
    import jax  # pylint: disable=g-import-not-at-top
    process_index, process_count = jax.process_index(), jax.process_count()
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index={process_index} must be in 0..{process_count - 1}")
  if global_batch_size % process_count:
    raise ValueError(f"global_batch_size={global_batch_size} is not divisible by the "
                     f"{process_count} processes")
  batch_size = global_batch_size // process_count
  if num_context_views is not None and not 1 <= num_context_views <= layout.max_context_views:
    raise ValueError(f"num_context_views={num_context_views} must be in "
                     f"1..{layout.max_context_views} (max_context_views)")
  if pose_order not in poses.POSE_ORDERS:
    raise ValueError(f"pose_order must be one of {poses.POSE_ORDERS}, got {pose_order!r}")
  if image_size < 1:
    raise ValueError(f"image_size must be positive, got {image_size}")

  # The scene order is global: global batch b holds the scenes at positions [b G, (b + 1) G)
  # of one shuffle of the whole split (G = global_batch_size), and process p reads rows
  # [p B, (p + 1) B) of it. A batch is then a function of (seed, b) alone, whatever the number
  # of processes, so a run resumed with another process count continues the same global order
  # from the batch index its checkpoint holds (checkpoints.Checkpointer._restore_data).
  records = len(source)
  if records < global_batch_size:
    raise ValueError(f"{layout.where} {split} has {records} scenes, fewer than its batch of "
                     f"{global_batch_size} (the global batch)")
  order = grain.MapDataset.range(records)
  if shuffle:
    order = order.shuffle(seed=seed)
  order = order.repeat(num_epochs).batch(global_batch_size, drop_remainder=True)
  rows = slice(process_index * batch_size, (process_index + 1) * batch_size)
  dataset = order.map(_Reader(source, rows))
  dataset = dataset.map_with_index(SceneBatcher(
      layout=dataclasses.replace(layout, where=f"{layout.where} {split}"), image_size=image_size,
      num_context_views=num_context_views, pose_order=pose_order, seed=seed,
      process_index=process_index))
  dataset = dataset.to_iter_dataset(grain.ReadOptions(
      num_threads=read_threads, prefetch_buffer_size=prefetch_batches))
  if worker_count:
    _ensure_flags_parsed()
    dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
  return dataset


@dataclasses.dataclass(frozen=True)
class Layout:
  """What the stored scenes look like and how many context views a batch holds."""
  frames_per_scene: int   # S
  frame_size: int         # stored pixels per side.
  max_context_views: int  # K
  where: str              # names the dataset in errors, e.g. 'gqn/rooms_ring_camera/1.0.0'.


@dataclasses.dataclass(frozen=True)
class _Reader:
  """A global batch's scene indices -> [(index, serialized scene)] of this process's rows.

  Only this process's rows are read; the index names the record in errors.
  """
  source: object
  rows: slice

  def __call__(self, indices: np.ndarray):
    return [(int(index), self.source[int(index)]) for index in indices[self.rows]]


@dataclasses.dataclass(frozen=True)
class SceneBatcher:
  """Batch number and [(record index, serialized scene)] -> a batch of the contract."""
  layout: Layout
  image_size: int
  num_context_views: int | None
  pose_order: str
  seed: int
  process_index: int

  def __call__(self, step: int, records) -> dict[str, np.ndarray]:
    layout, size = self.layout, self.image_size
    views = layout.max_context_views
    # M depends on (seed, step) only, so every process uses the same M for one global batch,
    # and a scene's frames on (seed, step, its row of the global batch), so that a global batch
    # is the same whatever the number of processes sharing it.
    count = self.num_context_views or int(
        np.random.default_rng([self.seed, step]).integers(1, views + 1))
    batch, stored = len(records), layout.frame_size
    first_row = self.process_index * batch
    # Views of row r: frames[r, :count] are the context, frames[r, count] the query.
    frames = np.empty((batch, count + 1, stored, stored, 3), np.uint8)
    cameras = np.empty((batch, count + 1, 5), np.float32)
    for row, (index, serialized) in enumerate(records):
      where = f"{layout.where}, record {index}"
      jpegs, scene_cameras, scene = parse_scene(serialized, layout.frames_per_scene, where)
      rng = np.random.default_rng([self.seed, step, first_row + row])
      chosen = rng.choice(layout.frames_per_scene, count + 1, replace=False)
      for slot, frame in enumerate(chosen):
        image = frames_lib.decode_jpeg(jpegs[frame], f"{where} (scene {scene}), frame {frame}")
        if image.shape != frames.shape[2:]:
          raise RecordError(f"{where} (scene {scene}), frame {frame}: {image.shape[1]}x"
                            f"{image.shape[0]} px, expected {stored}x{stored}")
        frames[row, slot] = image
      cameras[row] = scene_cameras[chosen]
    images = frames_lib.resize(frames.astype(np.float32) / 255.0, size)
    if size != stored:  # filter weights sum to 1; only float rounding can leave [0, 1].
      images = np.clip(images, 0.0, 1.0)
    context_images = np.zeros((batch, views, size, size, 3), np.float32)
    context_images[:, :count] = images[:, :count]
    context_poses = np.zeros((batch, views, poses.POSE_DIM), np.float32)
    context_poses[:, :count] = poses.camera_to_pose(cameras[:, :count], self.pose_order)
    return {
        "context_images": context_images,
        "context_poses": context_poses,
        "context_mask": np.broadcast_to(np.arange(views) < count, (batch, views)).copy(),
        "query_image": np.ascontiguousarray(images[:, count]),
        "query_pose": poses.camera_to_pose(cameras[:, count], self.pose_order),
    }


def parse_scene(serialized: bytes, frames_per_scene: int, where: str):
  """A stored TFDS example -> (S JPEG byte strings, cameras float32 [S, 5], scene name)."""
  from google.protobuf import message  # pylint: disable=g-import-not-at-top
  tf_example_pb2 = extras.require("tensorflow_datasets.proto", "data").tf_example_pb2
  try:
    features = tf_example_pb2.Example.FromString(serialized).features.feature
  except message.DecodeError as error:
    raise RecordError(f"{where}: not a tf.train.Example ({error})") from None
  jpegs = features["frames"].bytes_list.value
  cameras = np.asarray(features["cameras"].float_list.value, np.float32)
  scene = b"".join(features["scene"].bytes_list.value).decode("utf-8", "replace")
  if len(jpegs) != frames_per_scene:
    raise RecordError(f"{where}: {len(jpegs)} frames, expected {frames_per_scene}")
  if cameras.size != frames_per_scene * 5:
    raise RecordError(f"{where}: {cameras.size} camera values, expected {frames_per_scene} x 5")
  cameras = cameras.reshape(frames_per_scene, 5)
  if not np.all(np.isfinite(cameras)):
    raise RecordError(f"{where}: non-finite camera values")
  return jpegs, cameras, scene


def _ensure_flags_parsed():
  """grain's worker processes read absl flags; outside an absl app, take their defaults."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def open_split(name_or_builder, split: str, data_dir=None):
  """(TFDS builder, random-access source of serialized scenes) of a prepared split.

  The one place the prepared ``gqn`` dataset is opened: batches here, whole scenes for
  evaluation and figures (gqn_jax/figures/scenes.py). ``name_or_builder`` is as for
  ``create_dataset``. Raises FileNotFoundError saying how to build a dataset that is not there.
  """
  tfds = extras.require("tensorflow_datasets", "data", "reading the prepared TFDS dataset")
  builder = name_or_builder
  if isinstance(name_or_builder, str):
    name = name_or_builder if "/" in name_or_builder else f"{TFDS_NAME}/{name_or_builder}"
    config = name.split("/")[1].split(":")[0]
    _check_config_name(name.split("/")[0], config)
    build = (f"Build it with\n  tfds build data/gqn --config={config} "
             f"--data_dir={data_dir or '<data_dir>'} --file_format=array_record")
    if data_dir is not None and "://" not in str(data_dir) and not os.path.isdir(data_dir):
      raise FileNotFoundError(f"data_dir={data_dir} does not exist, so it holds no prepared "
                              f"TFDS dataset {name}. {build}")
    try:
      builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # TFDS raises several types for "not prepared here".
      # Its first line only: the rest lists every dataset TFDS knows.
      reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
      raise FileNotFoundError(
          f"no prepared TFDS dataset {name} under data_dir={data_dir} ({reason}). "
          f"{build}") from None
  try:
    source = builder.as_data_source(
        split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
  except Exception as error:  # e.g. a split that was not prepared.
    raise FileNotFoundError(f"no prepared split {split} of TFDS dataset "
                            f"{builder.info.full_name} under data_dir={data_dir}: "
                            f"{error}") from None
  return builder, source


def _check_config_name(dataset: str, config: str) -> None:
  """A ``gqn`` config is a released name, ``generated_<name>``, either with '-<variant>'."""
  if dataset != TFDS_NAME:
    return
  base = config.split("-", 1)[0].removeprefix(GENERATED_PREFIX)
  if base not in released_format.DATASETS:
    raise ValueError(
        f"unknown dataset {config!r}: the gqn datasets are {', '.join(released_format.DATASETS)}"
        f", each also as generated_<name> (scenes from gqn_jax.generate) and with a "
        f"'-<variant>' suffix")


def _layout(builder, max_context_views: int | None) -> Layout:
  """Frames per scene and frame size from the prepared dataset's features; K from the table."""
  info = builder.info
  shape = info.features["frames"].shape  # (S, H, W, 3)
  where = f"{info.name}/{info.config_name}/{info.version}"
  # Config names are <dataset>, generated_<dataset>, or either with a '-<variant>' suffix.
  config = info.config_name.split("-", 1)[0].removeprefix(GENERATED_PREFIX)
  if max_context_views is None:
    if config not in released_format.DATASETS:
      raise ValueError(f"{where}: unknown dataset, pass max_context_views")
    max_context_views = released_format.DATASETS[config].max_context_views
  if not 1 <= max_context_views < shape[0]:
    raise ValueError(
        f"max_context_views={max_context_views} must be in 1..{shape[0] - 1}: {where} has "
        f"{shape[0]} frames per scene and the query must be a frame distinct from the context")
  return Layout(int(shape[0]), int(shape[1]), int(max_context_views), where)
