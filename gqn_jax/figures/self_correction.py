"""Predictions that correct themselves as the camera moves through a held-out scene.

The camera walks a path through the scene: its frames in order of heading, from a starting
frame drawn by the seed (around the room, for the ring-camera families). After each new frame,
r is updated by one encoder pass (``gqn_jax.model.Stream``: r is a sum over views, so earlier
frames are never re-encoded), and a fixed set of views the path never visits is predicted from
it. The strip shows, for the first scene, the frames seen and the predictions of each unseen
view after each one; the curves show the prediction's PSNR against the truth and the prior
samples' mean pixel variance, over every scene, against the number of frames seen.
"""

import numpy as np

from gqn_jax.figures import common
from gqn_jax.figures import uncertainty

DEFAULT_SCENES = 16
DEFAULT_SAMPLES = 6
TARGETS = 3          # unseen views predicted after each step.
LEFT_INCHES = 1.0
TOP_INCHES = 0.75
CURVE_INCHES = 2.0
GAP_INCHES = 0.6


def path_and_targets(scene, path_length: int, seed: int):
  """(path frame indices in order of heading, target frame indices) of one scene.

  The targets are drawn first (``Scene.views``), the path is the rest, sorted by yaw starting
  from a frame the seed picks, so the camera sweeps round the scene in one direction.
  """
  frames = len(scene.jpegs)
  if path_length + TARGETS > frames:
    raise ValueError(f"{scene.name}: a path of {path_length} frames and {TARGETS} unseen "
                     f"views need {path_length + TARGETS} frames, the scene has {frames}")
  order = scene.views(seed, frames)
  targets, rest = order[:TARGETS], order[TARGETS:]
  yaw = np.mod(scene.cameras[rest, 3], 2 * np.pi)
  start = yaw[0]  # rest[0] is a seeded random frame: the path starts there.
  path = rest[np.argsort(np.mod(yaw - start, 2 * np.pi), kind="stable")]
  return path[:path_length], targets


def walk(model, scenes, path_length: int, samples: int, seed: int):
  """Streams each scene's path; returns path images [N, T, H, W, 3], target images
  [N, Q, H, W, 3], mean predictions [N, T, Q, H, W, 3] and pixel variance [N, T, Q, H, W]."""
  chosen = [path_and_targets(scene, path_length, seed) for scene in scenes]
  path_images = np.stack([s.images(p) for s, (p, _) in zip(scenes, chosen)])
  path_poses = np.stack([s.poses[p] for s, (p, _) in zip(scenes, chosen)])
  target_images = np.stack([s.images(t) for s, (_, t) in zip(scenes, chosen)])
  target_poses = np.stack([s.poses[t] for s, (_, t) in zip(scenes, chosen)])
  count = len(scenes)
  stream = model.stream(count)
  means, variances = [], []
  for step in range(path_length):
    r = stream.observe(path_images[:, step], path_poses[:, step])
    r_per_target = np.repeat(np.asarray(r), TARGETS, axis=0)
    drawn = common.prior_samples(model, r_per_target, target_poses.reshape(count * TARGETS, -1),
                                 samples, seed)  # [N * Q, S, H, W, 3]
    drawn = drawn.reshape(count, TARGETS, *drawn.shape[1:])
    means.append(drawn.mean(axis=2))
    variances.append(uncertainty.pixel_variance(drawn))
  return path_images, target_images, np.stack(means, 1), np.stack(variances, 1)


def make(request: common.Request):
  """Renders the figure for ``request`` and writes it as a PNG; returns the path."""
  output = common.check_suffix(request.output, (".png",), "self_correction")
  count = common.positive(request.scenes, "scenes", DEFAULT_SCENES)
  samples = common.positive(request.samples, "samples", DEFAULT_SAMPLES)
  if samples < 2:
    raise ValueError(f"--samples must be at least 2 to estimate a variance, got {samples}")
  path_length = common.context_views(request)
  scenes = common.held_out_scenes(request, count)
  path, targets, means, variances = walk(common.inference(request), scenes, path_length,
                                         samples, request.seed)
  title = (f"Predictions of {TARGETS} unseen views as the camera moves (r updated view by view)"
           f"\n{common.checkpoint_title(request)}")
  from gqn_jax import evaluation  # pylint: disable=g-import-not-at-top
  psnrs = np.asarray(evaluation.psnr(means, targets[:, None]))  # [N, T, Q]
  figure = draw(path[0], targets[0], means[0], psnrs,
                variances.mean(axis=(-2, -1)), title)
  return common.save_png(figure, output)


def draw(path, targets, means, psnrs, mean_variance, title: str):
  """path [T, H, W, 3] and targets [Q, H, W, 3] of the scene shown, its mean predictions
  [T, Q, H, W, 3]; psnrs and mean_variance [N, T, Q] over every scene."""
  steps, queries = means.shape[:2]
  cell = common.CELL_INCHES
  width = LEFT_INCHES + cell * (steps + 1) + 0.3
  height = TOP_INCHES + cell * (queries + 1) + GAP_INCHES + CURVE_INCHES + 0.5
  figure = common.new_figure(width, height)
  grid = figure.add_gridspec(
      queries + 1, steps + 1, wspace=0.06, hspace=0.08, left=LEFT_INCHES / width,
      right=(LEFT_INCHES + cell * (steps + 1)) / width, top=1 - TOP_INCHES / height,
      bottom=(0.5 + CURVE_INCHES + GAP_INCHES) / height)
  for step in range(steps):
    axes = figure.add_subplot(grid[0, step])
    common.show(axes, path[step], f"after {step + 1} view{'s' * (step > 0)}")
    if step == 0:
      axes.set_ylabel("new view", fontsize=common.LABEL_FONT)
    for query in range(queries):
      axes = figure.add_subplot(grid[query + 1, step])
      common.show(axes, means[step, query])
      if step == 0:
        axes.set_ylabel(f"unseen view {query + 1}\nprediction", fontsize=common.LABEL_FONT)
  for query in range(queries):
    common.show(figure.add_subplot(grid[query + 1, steps]), targets[query],
                "truth" if query == 0 else None)

  counts = np.arange(1, steps + 1)
  half = (cell * (steps + 1) - 0.8) / 2
  left = figure.add_axes([LEFT_INCHES / width, 0.5 / height, half / width, CURVE_INCHES / height])
  right = figure.add_axes([(LEFT_INCHES + half + 0.8) / width, 0.5 / height, half / width,
                           CURVE_INCHES / height])
  scenes = psnrs.shape[0]
  for axes, values, label in ((left, psnrs, "PSNR of the prediction (dB)"),
                              (right, mean_variance, "mean pixel variance")):
    axes.plot(counts, values.mean(axis=(0, 2)), "o-", color="C3", lw=2, ms=4,
              label=f"mean over {scenes} scenes x {queries} views")
    axes.plot(counts, values[0].mean(axis=-1), "o-", color="0.6", lw=1, ms=3,
              label="the scene above")
    axes.set_xticks(counts)
    axes.set_xlabel("views seen along the path", fontsize=common.LABEL_FONT)
    axes.set_ylabel(label, fontsize=common.LABEL_FONT)
    axes.tick_params(labelsize=7)
    axes.grid(alpha=0.3)
  right.set_ylim(bottom=0)
  left.legend(fontsize=6, frameon=False)
  figure.suptitle(title, fontsize=common.TITLE_FONT, y=1 - 0.08 / height, va="top")
  return figure
