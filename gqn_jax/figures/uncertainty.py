"""Uncertainty shrinking as context views are added (the paper's Fig. 3-style analysis).

For each held-out scene, the query view is sampled from the prior given the first 1, 2, ..., K
context views (nested: each step adds one view). The per-pixel variance over samples, averaged
over colour channels, shows where the model is unsure; its mean over pixels, plotted against
the number of views, should fall as views that show more of the scene come in.
"""

import numpy as np

from gqn_jax.figures import common
from gqn_jax.figures import scenes as scenes_lib

DEFAULT_SCENES = 3
DEFAULT_SAMPLES = 8
ROW_KINDS = ("added view", "one sample", "variance")
LEFT_INCHES = 0.9
TOP_INCHES = 0.75
CURVE_INCHES = 2.2
GAP_INCHES = 0.7     # between the image grid and the curve.
COLORBAR = 0.25      # colour bar column, in image widths.


def make(request: common.Request):
  """Renders the figure for ``request`` and writes it as a PNG; returns the path."""
  output = common.check_suffix(request.output, (".png",), "uncertainty")
  count = common.positive(request.scenes, "scenes", DEFAULT_SCENES)
  samples = common.positive(request.samples, "samples", DEFAULT_SAMPLES)
  if samples < 2:
    raise ValueError(f"--samples must be at least 2 to estimate a variance, got {samples}")
  views = common.context_views(request)
  scenes = common.held_out_scenes(request, count)
  context, context_poses, query, query_poses = scenes_lib.context_and_query(
      scenes, views, request.seed)  # [N, K, H, W, 3], [N, K, 7], [N, H, W, 3], [N, 7]
  model = common.inference(request)
  drawn = []  # per M: [N, S, H, W, 3]
  for m in range(1, views + 1):
    mask = np.broadcast_to(np.arange(views) < m, (count, views))
    r = model.represent(context, context_poses, mask)
    drawn.append(common.prior_samples(model, r, query_poses, samples, request.seed))
  drawn = np.stack(drawn, axis=1)                                                  # [N, K, S, ...]
  variance = pixel_variance(drawn)                                                 # [N, K, H, W]
  title = (f"Uncertainty as context views are added: per-pixel variance of {samples} prior "
           f"samples of the query view\n{common.checkpoint_title(request)}")
  figure = draw(context, query, drawn[:, :, 0], variance, title,
                row_labels=[f"scene {request.first_scene + i}" for i in range(count)])
  return common.save_png(figure, output)


def pixel_variance(samples) -> np.ndarray:
  """[..., S, H, W, 3] -> [..., H, W]: variance over samples, averaged over colour channels."""
  return np.var(samples, axis=-4).mean(axis=-1)


def figure_inches(scenes: int, views: int) -> tuple[float, float]:
  cell = common.CELL_INCHES
  width = LEFT_INCHES + cell * (views + 1 + COLORBAR) + 0.9  # colour bar ticks and label.
  height = TOP_INCHES + cell * len(ROW_KINDS) * scenes + 0.15 * scenes + GAP_INCHES + CURVE_INCHES
  return width, height + 0.45


def draw(context, query, one_sample, variance, title: str, row_labels=None):
  """One block of rows per scene, then the curve of mean variance against views.

  context [N, K, H, W, 3], query [N, H, W, 3], one_sample [N, K, H, W, 3] (a sample given the
  first M views, per M), variance [N, K, H, W].
  """
  scenes, views = context.shape[:2]
  width, height = figure_inches(scenes, views)
  figure = common.new_figure(width, height)
  cell = common.CELL_INCHES
  grid_bottom = 0.45 + CURVE_INCHES + GAP_INCHES
  # One block of 3 image rows per scene, a thin spacer row between blocks.
  heights = []
  for scene in range(scenes):
    heights += [1.0] * len(ROW_KINDS) + ([0.15] if scene < scenes - 1 else [])
  grid = figure.add_gridspec(
      len(heights), views + 2, height_ratios=heights, width_ratios=[1.0] * (views + 1) + [COLORBAR],
      wspace=0.06, hspace=0.06, left=LEFT_INCHES / width,
      right=(LEFT_INCHES + cell * (views + 1 + COLORBAR)) / width,
      top=1 - TOP_INCHES / height, bottom=grid_bottom / height)
  top = float(np.max(variance)) or 1.0
  image = None
  for scene in range(scenes):
    first_row = scene * (len(ROW_KINDS) + 1)
    for kind_index, kind in enumerate(ROW_KINDS):
      row = first_row + kind_index
      for m in range(views):
        axes = figure.add_subplot(grid[row, m])
        header = f"{m + 1} view{'s' * (m > 0)}" if row == 0 else None
        if kind == "added view":
          common.show(axes, context[scene, m], header)
        elif kind == "one sample":
          common.show(axes, one_sample[scene, m], header)
        else:
          common.show(axes, variance[scene, m], header, cmap="magma", vmin=0.0, vmax=top)
          image = axes.images[-1]
        if m == 0:
          label = f"{row_labels[scene]}\n{kind}" if row_labels and kind_index == 0 else kind
          axes.set_ylabel(label, fontsize=common.LABEL_FONT)
      if kind_index == 0:
        common.show(figure.add_subplot(grid[row, views]), query[scene],
                    "true view" if scene == 0 else None)
  colorbar_axes = figure.add_subplot(grid[len(ROW_KINDS) - 1, views + 1])
  colorbar = figure.colorbar(image, cax=colorbar_axes)
  colorbar.ax.tick_params(labelsize=6)
  colorbar.set_label("pixel variance", fontsize=7)

  curve = figure.add_axes([LEFT_INCHES / width, 0.45 / height,
                           cell * (views + 1) / width, CURVE_INCHES / height])
  mean_variance = variance.mean(axis=(-2, -1))  # [N, K]
  counts = np.arange(1, views + 1)
  for scene in range(scenes):
    curve.plot(counts, mean_variance[scene], "o-", color="0.6", lw=1, ms=3,
               label="single scenes" if scene == 0 else None)
  curve.plot(counts, mean_variance.mean(axis=0), "o-", color="C3", lw=2, ms=4,
             label=f"mean over {scenes} scenes")
  curve.set_xticks(counts)
  curve.set_xlabel("context views", fontsize=common.LABEL_FONT)
  curve.set_ylabel("mean pixel variance", fontsize=common.LABEL_FONT)
  curve.tick_params(labelsize=7)
  curve.set_ylim(bottom=0)
  curve.grid(alpha=0.3)
  curve.legend(fontsize=7, frameon=False)
  figure.suptitle(title, fontsize=common.TITLE_FONT, y=1 - 0.08 / height, va="top")
  return figure
