"""Novel views (the paper's Fig. 2): context views, the true query view, and prior samples.

One row per held-out scene: its M context views, the view from the query pose that the model
never sees, and samples of that view drawn from the prior given the context.
"""

from gqn_jax.figures import common
from gqn_jax.figures import scenes as scenes_lib

DEFAULT_SCENES = 4
DEFAULT_SAMPLES = 4
GAP = 0.25            # width of the blank column between groups, in image widths.
LEFT_INCHES = 0.35    # room for row labels.
TOP_INCHES = 0.75     # room for the title and column headers.


def make(request: common.Request):
  """Renders the figure for ``request`` and writes it as a PNG; returns the path."""
  output = common.check_suffix(request.output, (".png",), "novel_views")
  count = common.positive(request.scenes, "scenes", DEFAULT_SCENES)
  samples = common.positive(request.samples, "samples", DEFAULT_SAMPLES)
  views = common.context_views(request)
  scenes = common.held_out_scenes(request, count)
  context, context_poses, query, query_poses = scenes_lib.context_and_query(
      scenes, views, request.seed)  # [N, K, H, W, 3], [N, K, 7], [N, H, W, 3], [N, 7]
  model = common.inference(request)
  r = model.represent(context, context_poses)
  drawn = common.prior_samples(model, r, query_poses, samples, request.seed)
  title = (f"Novel views: {views} context view{'s' * (views > 1)}, the true query view, and "
           f"{samples} prior samples\n{common.checkpoint_title(request)}")
  figure = draw(context, query, drawn, title,
                row_labels=[f"scene {request.first_scene + i}" for i in range(count)])
  return common.save_png(figure, output)


def figure_inches(rows: int, views: int, samples: int) -> tuple[float, float]:
  """(width, height) of the figure for ``rows`` scenes."""
  cell = common.CELL_INCHES
  return (LEFT_INCHES + cell * (views + 1 + samples + 2 * GAP) + 0.1,
          TOP_INCHES + cell * rows + 0.1)


def draw(context, query, samples, title: str, row_labels=None):
  """context [N, M, H, W, 3], query [N, H, W, 3], samples [N, S, H, W, 3] -> Figure."""
  rows, views = context.shape[:2]
  count = samples.shape[1]
  width, height = figure_inches(rows, views, count)
  figure = common.new_figure(width, height)
  ratios = [1.0] * views + [GAP, 1.0, GAP] + [1.0] * count
  grid = figure.add_gridspec(
      rows, len(ratios), width_ratios=ratios, wspace=0.06, hspace=0.06,
      left=LEFT_INCHES / width, right=1 - 0.1 / width, top=1 - TOP_INCHES / height,
      bottom=0.1 / height)
  for row in range(rows):
    panels = ([(k, context[row, k], f"context {k + 1}") for k in range(views)]
              + [(views + 1, query[row], "true view")]
              + [(views + 3 + s, samples[row, s], f"sample {s + 1}") for s in range(count)])
    for column, image, header in panels:
      axes = figure.add_subplot(grid[row, column])
      common.show(axes, image, header if row == 0 else None)
      if column == 0 and row_labels:
        axes.set_ylabel(row_labels[row], fontsize=common.LABEL_FONT)
  figure.suptitle(title, fontsize=common.TITLE_FONT, y=1 - 0.08 / height, va="top")
  return figure
