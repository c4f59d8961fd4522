"""Where scenes land in representation space: 2-D PCA and t-SNE maps of r, coloured by factors.

r of each held-out scene (from its first K context views, flattened) is projected onto the two
principal components of all the scenes' r (NumPy SVD; the axis labels give the share of variance
each explains) and embedded by t-SNE (scikit-learn, as the paper shows it), which keeps
neighbours together where PCA keeps only the largest directions. One row per factor, read from
the scenes' factor sidecars (``figures.scenes``), PCA on the left, t-SNE on the right: a factor
the representation encodes strongly forms clusters.
"""

import colorsys

import numpy as np

from gqn_jax import extras
from gqn_jax.figures import common
from gqn_jax.figures import scenes as scenes_lib

DEFAULT_SCENES = 200
PANEL_INCHES = 3.0    # one scatter plot, with its axis labels.
LEGEND_INCHES = 1.4   # its legend, to its right.
COLUMNS = 2           # PCA, t-SNE.
SEVERAL = "several objects"
HUES = ((15, "red"), (45, "orange"), (70, "yellow"), (160, "green"), (200, "cyan"),
        (260, "blue"), (330, "magenta"), (360, "red"))


# Marker colours of categories that are colours (palette names and hue_name's names).
NAMED_COLOURS = {"red": "#d62728", "orange": "#ff7f0e", "yellow": "#e8c61a", "green": "#2ca02c",
                 "cyan": "#17becf", "blue": "#1f4fd6", "magenta": "#c41fc4", "cerise": "#de3163",
                 "white": "#f4f4f4"}


def _first_object(attribute):
  """The scene's object's attribute; scenes with more than one object get their own label."""
  def extract(factors):
    objects = factors["objects"]
    return attribute(objects[0]) if len(objects) == 1 else SEVERAL
  return extract


def hue_name(rgb) -> str:
  """Coarse colour name of an RGB triple in [0, 1] (by hue)."""
  hue = colorsys.rgb_to_hsv(*rgb)[0] * 360
  return next(name for bound, name in HUES if hue < bound)


# Family kind -> factor name -> factors dict -> label.
FACTORS = {
    "rooms": {
        "object_count": lambda f: f"{len(f['objects'])} object{'s' * (len(f['objects']) > 1)}",
        "object_shape": _first_object(lambda o: o["shape"]),
        "object_colour": _first_object(lambda o: hue_name(o["rgb"])),
        "wall": lambda f: f["wall"]["colour"],
        "floor": lambda f: f["floor"]["colour"],
    },
    "shepard_metzler": {
        "extent": lambda f: "x".join(str(v) for v in sorted(
            (np.ptp([c["cell"] for c in f["cubes"]], axis=0) + 1).tolist(), reverse=True)),
        "first_cube_colour": lambda f: hue_name(f["cubes"][0]["rgb"]),
    },
}


def kind_of(factors: dict) -> str:
  return "rooms" if "objects" in factors else "shepard_metzler"


def make(request: common.Request):
  """Renders the figure for ``request`` and writes it as a PNG; returns the path."""
  output = common.check_suffix(request.output, (".png",), "representation_space")
  if request.scenes is None:  # as many as the split has, up to the default.
    config = request.checkpoint.config
    stored = scenes_lib.split_size(config.data.dataset, request.split, request.data_dir)
    count = min(DEFAULT_SCENES, stored - request.first_scene)
  else:
    count = common.positive(request.scenes, "scenes", DEFAULT_SCENES)
  if count < 3:
    raise ValueError(f"--scenes must be at least 3 for a 2-D PCA, got {count}")
  views = common.context_views(request)
  scenes = common.held_out_scenes(request, count, with_factors=True)
  available = FACTORS[kind_of(scenes[0].factors)]
  names = request.factors or tuple(available)
  unknown = [name for name in names if name not in available]
  if unknown:
    raise ValueError(f"--factors: unknown factor(s) {unknown} for "
                     f"{request.checkpoint.config.data.dataset}; known: {', '.join(available)}")
  vectors = common.flat_representations(common.inference(request), scenes, views, request.seed)
  points, explained = pca_2d(vectors)
  maps = {"PCA": (points, (f"PC 1 ({100 * explained[0]:.0f}% of variance)",
                           f"PC 2 ({100 * explained[1]:.0f}%)")),
          "t-SNE": (tsne_2d(vectors, request.seed), ("t-SNE 1", "t-SNE 2"))}
  labels = {name: [available[name](scene.factors) for scene in scenes] for name in names}
  title = (f"Representation space: PCA and t-SNE of r for {count} {request.split} scenes "
           f"({views} context views each)\n{common.checkpoint_title(request)}")
  figure = draw(maps, labels, title)
  return common.save_png(figure, output)


def pca_2d(vectors) -> tuple[np.ndarray, np.ndarray]:
  """[N, D] -> (points [N, 2] on the first two principal components, variance shares [2])."""
  vectors = np.asarray(vectors, np.float64)
  centred = vectors - vectors.mean(axis=0)
  _, singular, right = np.linalg.svd(centred, full_matrices=False)
  total = float(np.sum(singular ** 2)) or 1.0
  components = np.zeros((2, vectors.shape[1]))
  components[:min(2, len(right))] = right[:2]
  shares = np.zeros(2)
  shares[:min(2, len(singular))] = singular[:2] ** 2 / total
  # Fix each component's sign (SVD's is arbitrary) so that reruns draw the same picture.
  points = centred @ components.T
  signs = np.where(np.sum(points ** 3, axis=0) < 0, -1.0, 1.0)
  return points * signs, shares


def tsne_2d(vectors, seed: int) -> np.ndarray:
  """[N, D] -> [N, 2] t-SNE embedding (perplexity below N, as t-SNE requires), fixed by seed."""
  manifold = extras.require("sklearn.manifold", "figures", "the t-SNE map of r")
  vectors = np.asarray(vectors, np.float64)
  perplexity = min(30.0, (len(vectors) - 1) / 3)
  return manifold.TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
      vectors - vectors.mean(axis=0))


def figure_inches(factors: int) -> tuple[float, float]:
  return COLUMNS * (PANEL_INCHES + LEGEND_INCHES) + 0.2, factors * (PANEL_INCHES + 0.7) + 0.6


def category_colour(category: str, number: int) -> str:
  """A colour factor's own colour where it has one; else the number's colour of the cycle."""
  if category == SEVERAL:
    return "0.75"
  return NAMED_COLOURS.get(category, f"C{number % 10}")


def draw(maps: dict, labels: dict, title: str):
  """maps {name: (points [N, 2], (x label, y label))}, labels {factor: [N labels]} -> one row
  of scatter panels per factor, one panel per map."""
  width, height = figure_inches(len(labels))
  figure = common.new_figure(width, height)
  cell_width = PANEL_INCHES + LEGEND_INCHES
  for row, (factor, values) in enumerate(labels.items()):
    categories = sorted(set(values), key=lambda v: (v == SEVERAL, v))
    for column, (map_name, (points, (x_label, y_label))) in enumerate(maps.items()):
      left = 0.55 + column * cell_width
      bottom = height - 0.8 - (row + 1) * (PANEL_INCHES + 0.7) + 0.8
      axes = figure.add_axes([left / width, bottom / height, (PANEL_INCHES - 0.55) / width,
                              (PANEL_INCHES - 0.3) / height])
      for number, category in enumerate(categories):
        chosen = np.array([value == category for value in values])
        axes.scatter(points[chosen, 0], points[chosen, 1], s=12, alpha=0.85,
                     color=category_colour(category, number), edgecolors="0.3",
                     linewidths=0.3, label=f"{category} ({int(chosen.sum())})")
      axes.set_title(f"{map_name}, coloured by {factor.replace('_', ' ')}",
                     fontsize=common.TITLE_FONT)
      axes.set_xlabel(x_label, fontsize=7)
      axes.set_ylabel(y_label, fontsize=7)
      axes.tick_params(labelsize=6)
      axes.legend(fontsize=6.5, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0, handletextpad=0.2)
  figure.suptitle(title, fontsize=common.TITLE_FONT, y=1 - 0.08 / height, va="top")
  return figure
