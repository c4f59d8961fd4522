"""Scene algebra (the paper's Fig. 5): r(A) - r(B) + r(C), rendered.

Each row is an analogy between four rooms that differ in one factor at a time
(``controlled_scenes``): A and B share a shape and differ in colour, B and C share a colour and
differ in shape, and D has C's shape with A's colour. If the representation keeps shape and colour
apart, r(A) - r(B) + r(C) is a scene like D, and rendering it from a new pose shows D's object.
The row label gives how far the arithmetic lands from r(D), relative to the distance between
r(A) and r(D) (1 = no closer than A itself).
"""

import numpy as np

from gqn_jax import poses as poses_lib
from gqn_jax.figures import common
from gqn_jax.figures import controlled_scenes
from gqn_jax.figures import scenes as scenes_lib
from gqn_jax.scenes import rooms

DEFAULT_ROWS = 3
DEFAULT_SAMPLES = 2
LEFT_INCHES = 1.05
TOP_INCHES = 1.2
GAP = 0.3


def make(request: common.Request):
  """Renders the figure for ``request`` and writes it as a PNG; returns the path."""
  output = common.check_suffix(request.output, (".png",), "scene_algebra")
  rows = common.positive(request.scenes, "scenes", DEFAULT_ROWS)
  samples = common.positive(request.samples, "samples", DEFAULT_SAMPLES)
  config = request.checkpoint.config
  family = scenes_lib.source_name(config.data.dataset)
  controlled_scenes.check_family(family)
  views = common.context_views(request)
  size = config.model.image_size
  cameras = controlled_scenes.ring(views + 1, request.seed)
  poses = poses_lib.camera_to_pose(cameras, config.model.pose_order).astype(np.float32)
  model = common.inference(request)
  analogies = choose_analogies(rows, request.seed)
  shown, predicted, from_truth, distances, names = [], [], [], [], []
  for row, analogy in enumerate(analogies):
    images = np.stack([controlled_scenes.render(
        controlled_scenes.room(family, shape, colour, background=request.first_scene + row),
        cameras, size) for shape, colour in analogy])                          # [4, K + 1, ...]
    r = np.asarray(model.represent(images[:, :views], np.broadcast_to(poses[:views],
                                                                       (4, views, 7))))
    combined = r[0] - r[1] + r[2]
    query = np.broadcast_to(poses[views], (2, 7))
    drawn = common.prior_samples(model, np.stack([combined, r[3]]), query, samples, request.seed)
    shown.append(images[:, views])
    predicted.append(drawn[0])
    from_truth.append(drawn[1, 0])
    distances.append(relative_distance(r[0], r[1], r[2], r[3]))
    names.append([f"{colour} {shape}" for shape, colour in analogy])
  title = (f"Scene algebra: r(A) - r(B) + r(C) rendered from a new pose, {views} context views "
           f"per scene\nratio = |r(A) - r(B) + r(C) - r(D)| / |r(A) - r(D)|: below 1 when the "
           f"arithmetic lands nearer D than A is\n{common.checkpoint_title(request)}")
  figure = draw(np.stack(shown), np.stack(predicted), np.stack(from_truth), names, distances,
                title)
  return common.save_png(figure, output)


def choose_analogies(rows: int, seed: int) -> list[tuple[tuple[str, str], ...]]:
  """Per row, (shape, colour) of A, B, C, D.

  A and B differ in colour, B and C in shape; D has C's shape and A's colour.
  """
  rng = np.random.default_rng([seed, rows])
  shapes, colours = list(rooms.SHAPES), list(controlled_scenes.COLOURS)
  analogies = []
  for _ in range(rows):
    shape_a, shape_c = rng.choice(shapes, 2, replace=False)
    colour_a, colour_b = rng.choice(colours, 2, replace=False)
    analogies.append(((str(shape_a), str(colour_a)), (str(shape_a), str(colour_b)),
                      (str(shape_c), str(colour_b)), (str(shape_c), str(colour_a))))
  return analogies


def relative_distance(r_a, r_b, r_c, r_d) -> float:
  """|r(A) - r(B) + r(C) - r(D)| / |r(A) - r(D)|."""
  return float(np.linalg.norm(r_a - r_b + r_c - r_d) / (np.linalg.norm(r_a - r_d) + 1e-12))


def figure_inches(rows: int, samples: int) -> tuple[float, float]:
  cell = common.CELL_INCHES
  return (LEFT_INCHES + cell * (5 + samples + 2 * GAP) + 0.1,
          TOP_INCHES + (cell + 0.2) * rows + 0.1)


def draw(shown, predicted, from_truth, names, distances, title: str):
  """shown [N, 4, H, W, 3] (query view of A..D), predicted [N, S, ...], from_truth [N, ...]."""
  rows, samples = predicted.shape[:2]
  width, height = figure_inches(rows, samples)
  figure = common.new_figure(width, height)
  ratios = [1.0] * 3 + [GAP] + [1.0] * samples + [GAP] + [1.0] * 2
  grid = figure.add_gridspec(rows, len(ratios), width_ratios=ratios, wspace=0.08, hspace=0.35,
                             left=LEFT_INCHES / width, right=1 - 0.1 / width,
                             top=1 - TOP_INCHES / height, bottom=0.1 / height)
  headers = ["A", "− B", "+ C"] + [f"sample {s + 1}" for s in range(samples)] + [
      "D (truth)", "from r(D)"]
  for row in range(rows):
    a, b, c, d = names[row]
    panels = ([(k, shown[row, k], name) for k, name in enumerate((a, b, c))]
              + [(4 + s, predicted[row, s], None) for s in range(samples)]
              + [(5 + samples, shown[row, 3], d), (6 + samples, from_truth[row], d)])
    for (column, image, name), header in zip(panels, headers):
      axes = figure.add_subplot(grid[row, column])
      label = "\n".join(part for part in (header if row == 0 or name is None else None, name)
                        if part)
      common.show(axes, image, label)
      if column == 0:
        axes.set_ylabel(f"analogy {row + 1}\nratio {distances[row]:.2f}",
                        fontsize=common.LABEL_FONT)
      if row == 0 and column == 4:  # the group's header, over all its sample columns.
        axes.annotate("r(A) − r(B) + r(C), rendered", xy=(samples / 2 + (samples - 1) * 0.04, 1),
                      xycoords="axes fraction", xytext=(0, 26), textcoords="offset points",
                      ha="center", fontsize=common.LABEL_FONT, fontweight="bold")
  figure.suptitle(title, fontsize=common.TITLE_FONT, y=1 - 0.08 / height, va="top")
  return figure
