r"""How much of a scene r makes readable: linear and small-MLP read-outs of the generator's factors.

  python -m gqn_jax.probe --workdir=runs/reference --output=runs/reference/figures/probe.png

The trained model is frozen. For each scene, r of its first K context views (``Scene.views``,
as the other figures draw them) is flattened into a feature vector; so are the same views' raw
pixels, and r from an untrained network of the same architecture (the read-out's own power,
without anything learnt). Read-outs of the generator's factors (the scenes' sidecars: object
count, positions, colours and shapes for rooms; joint angles and target position for jaco; the
cell map for mazes) are fitted on 10, 100, 1,000, ... labelled scenes of ``--label_split`` and
scored on the evaluated scenes of ``--split``: the data-efficiency curve behind the paper's
claim that control learns faster from r than from pixels. Every feature set is scored on the
same scenes. Scores: accuracy for categories, mean per-cell accuracy for sets of yes/no
labels, R^2 (and RMSE) for numbers. The GQN never saw a label: its training used images only.
"""

import dataclasses
import json
import warnings

from absl import flags
import numpy as np

from gqn_jax import allocator
from gqn_jax import cli
from gqn_jax import extras

FLAGS = flags.FLAGS
READOUTS = ("linear", "mlp")
FEATURES = ("r", "r untrained", "pixels")
# The small MLP read-out: one hidden layer of 64 units, weight decay, fixed seed.
MLP = dict(hidden_layer_sizes=(64,), alpha=1.0, max_iter=500, random_state=0)


@dataclasses.dataclass(frozen=True)
class Factor:
  """A target read from a scene's factors: 'category' (one label), 'labels' (a 0/1 vector)
  or 'number' (a float vector)."""
  name: str
  kind: str
  extract: callable


def _objects_centroid(factors):
  return np.mean([o["position"][:2] for o in factors["objects"]], axis=0)


def _objects_rgb(factors):
  return np.mean([o["rgb"] for o in factors["objects"]], axis=0)


ROOMS_SHAPES = ("box", "capsule", "cone", "cylinder", "dodecahedron", "icosahedron", "sphere",
                "triangle", "torus")


def _room_factors(factors) -> list[Factor]:
  del factors
  return [
      Factor("object_count", "category", lambda f: str(len(f["objects"]))),
      Factor("wall_colour", "category", lambda f: f["wall"]["colour"]),
      Factor("floor_colour", "category", lambda f: f["floor"]["colour"]),
      Factor("shapes_present", "labels",
             lambda f: np.array([any(o["shape"] == s for o in f["objects"]) for s in ROOMS_SHAPES],
                                np.float64)),
      Factor("object_centroid_xy", "number", _objects_centroid),
      Factor("object_mean_rgb", "number", _objects_rgb),
  ]


def _jaco_factors(factors) -> list[Factor]:
  names = sorted(factors["joints"])
  return [
      Factor("joint_angles", "number", lambda f: np.array([f["joints"][n] for n in names])),
      Factor("target_position", "number", lambda f: np.array(f["target"]["position"])),
  ]


def _maze_factors(factors) -> list[Factor]:
  del factors
  return [Factor("cell_map", "labels",
                 lambda f: np.array([c == "*" for row in f["cells"] for c in row], np.float64))]


def _shepard_metzler_factors(factors) -> list[Factor]:
  del factors
  return [Factor("cube_count", "category", lambda f: str(len(f["cubes"])))]


def factors_of(example: dict) -> list[Factor]:
  """The read-out targets of the family whose factors ``example`` is."""
  if "objects" in example:
    return _room_factors(example)
  if "joints" in example:
    return _jaco_factors(example)
  if "cells" in example:
    return _maze_factors(example)
  if "cubes" in example:
    return _shepard_metzler_factors(example)
  raise ValueError(f"no read-out targets for factors with keys {sorted(example)}")


def targets(factor: Factor, scenes) -> np.ndarray:
  values = [factor.extract(s.factors) for s in scenes]
  return np.asarray(values, object if factor.kind == "category" else np.float64)


def _readout(kind: str, readout: str, y_train):
  extras.require("sklearn", "figures", "the read-outs of gqn_jax.probe")
  from sklearn import compose, dummy, linear_model, neural_network, pipeline, preprocessing  # pylint: disable=g-import-not-at-top,g-multiple-import
  # Centred, then each scene's vector scaled to unit length. Per-feature standardisation would
  # divide by the spread of features that barely vary among a few labelled scenes (many of r's
  # do), and blow those up on the scored ones.
  scale = pipeline.make_pipeline(preprocessing.StandardScaler(with_std=False),
                                 preprocessing.Normalizer())
  if kind == "category":
    if len(set(y_train.tolist())) < 2:  # one label seen: nothing to separate.
      return dummy.DummyClassifier(strategy="most_frequent")
    model = (linear_model.LogisticRegression(C=10.0, max_iter=2000) if readout == "linear" else
             neural_network.MLPClassifier(**MLP))
  else:
    model = (linear_model.RidgeCV(alphas=np.logspace(-2, 5, 8)) if readout == "linear" else
             neural_network.MLPRegressor(**MLP))
    # Targets standardised too: an MLP fitted to raw positions or colours from a few scenes
    # diverges (R^2 in the thousands below zero), whatever the features.
    model = compose.TransformedTargetRegressor(model, transformer=preprocessing.StandardScaler())
  return pipeline.make_pipeline(scale, model)


def score(kind: str, y_true, y_pred) -> dict:
  """The read-out's score on held-out scenes (higher is better); RMSE too for numbers."""
  from sklearn import metrics  # pylint: disable=g-import-not-at-top
  if kind == "category":
    return {"score": float(np.mean(y_true == y_pred))}
  if kind == "labels":
    return {"score": float(np.mean((y_pred > 0.5) == (y_true > 0.5)))}
  y_true = y_true.reshape(len(y_true), -1)
  y_pred = np.asarray(y_pred).reshape(len(y_true), -1)
  return {"score": float(metrics.r2_score(y_true, y_pred)),
          "rmse": float(np.sqrt(np.mean((y_true - y_pred) ** 2)))}


def fit_and_score(factor: Factor, readout: str, x_train, y_train, x_test, y_test) -> dict:
  model = _readout(factor.kind, readout, y_train)
  if factor.kind == "number" and y_train.ndim == 1:
    y_train, y_test = y_train[:, None], y_test[:, None]
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # convergence warnings of tiny training sets.
    model.fit(x_train, y_train)
    predicted = model.predict(x_test)
  return score(factor.kind, y_test, predicted)


def label_counts(pool: int) -> list[int]:
  """10, 100, 1000, ... up to the labelled scenes there are (and all of them)."""
  counts = [n for n in (10, 100, 1_000, 10_000, 100_000) if n < pool]
  return counts + [pool]


def pixel_features(scenes, views: int, seed: int) -> np.ndarray:
  """[N, D] the same context views' pixels, flattened."""
  return np.stack([s.images(s.views(seed, views)).reshape(-1) for s in scenes]).astype(np.float64)


def probe(checkpoint, *, data_dir, scenes_dir, split: str, label_split: str, eval_scenes: int,
          label_scenes: int, views: int, seed: int = 0, progress=None) -> dict:
  """Fits every read-out of every factor on every feature set; returns the results table."""
  import jax  # pylint: disable=g-import-not-at-top
  from gqn_jax import model as model_lib  # pylint: disable=g-import-not-at-top
  from gqn_jax import train_step  # pylint: disable=g-import-not-at-top
  from gqn_jax.figures import common  # pylint: disable=g-import-not-at-top
  from gqn_jax.figures import scenes as scenes_lib  # pylint: disable=g-import-not-at-top
  config = checkpoint.config
  read = lambda split_name, count, first: scenes_lib.read_scenes(
      config.data.dataset, split_name, data_dir, count=count,
      image_size=config.model.image_size, pose_order=config.model.pose_order, first=first,
      with_factors=True, scenes_dir=scenes_dir)
  evaluated = read(split, eval_scenes, 0)
  labelled = read(label_split, label_scenes, eval_scenes if label_split == split else 0)
  model_cfg = checkpoint.model_config
  trained = model_lib.Inference(model_cfg, checkpoint.params)
  untrained_params = train_step.init_params(model_lib.GQN(model_cfg), jax.random.key(seed))
  untrained = model_lib.Inference(model_cfg, untrained_params)
  sets = {}
  features = lambda model, scenes: common.flat_representations(model, scenes, views, seed)
  for name, make in (("r", lambda s: features(trained, s)),
                     ("r untrained", lambda s: features(untrained, s)),
                     ("pixels", lambda s: pixel_features(s, views, seed))):
    sets[name] = (make(labelled), make(evaluated))
  factors = factors_of(evaluated[0].factors)
  counts = label_counts(len(labelled))
  results = {"dataset": config.data.dataset, "views": views, "split": split,
             "label_split": label_split, "evaluated_scenes": [s.name for s in evaluated],
             "label_counts": counts, "factors": {}}
  jobs = [(f, r, n) for f in factors for r in READOUTS for n in FEATURES]
  for index, (factor, readout, name) in enumerate(jobs):
    if progress:
      progress(index, len(jobs), f"{factor.name} {readout} {name}")
    x_train, x_test = sets[name]
    y_train, y_test = targets(factor, labelled), targets(factor, evaluated)
    curve = [fit_and_score(factor, readout, x_train[:n], y_train[:n], x_test, y_test)
             for n in counts]
    entry = results["factors"].setdefault(factor.name, {"kind": factor.kind, "curves": {}})
    entry["curves"][f"{name} / {readout}"] = curve
  return results


def draw(results: dict, title: str):
  """One panel per factor: score against labelled scenes, per feature set and read-out."""
  from gqn_jax.figures import common  # pylint: disable=g-import-not-at-top
  names = list(results["factors"])
  columns = min(3, len(names))
  rows = -(-len(names) // columns)
  width, height = 3.3 * columns + 0.3, 2.8 * rows + 0.9
  figure = common.new_figure(width, height)
  counts = results["label_counts"]
  colours = {"r": "C3", "r untrained": "0.55", "pixels": "C0"}
  for index, name in enumerate(names):
    row, column = divmod(index, columns)
    axes = figure.add_axes([(0.55 + 3.3 * column) / width,
                            (height - 0.75 - (row + 1) * 2.8 + 0.55) / height,
                            2.5 / width, 2.0 / height])
    entry = results["factors"][name]
    for label, curve in entry["curves"].items():
      features_name, readout = label.split(" / ")
      axes.plot(counts, [point["score"] for point in curve], "o-" if readout == "linear" else "s--",
                color=colours[features_name], lw=1.5, ms=3, label=label)
    axes.set_xscale("log")
    axes.set_title(name.replace("_", " "), fontsize=common.TITLE_FONT)
    axes.set_xlabel("labelled scenes", fontsize=7)
    metric = {"category": "accuracy", "labels": "mean accuracy", "number": "R^2"}[entry["kind"]]
    axes.set_ylabel(metric, fontsize=7)
    if entry["kind"] == "number":  # R^2 has no lower bound; below -1 is as useless as 0.
      axes.set_ylim(max(-1.0, axes.get_ylim()[0]), 1.0)
    axes.tick_params(labelsize=6)
    axes.grid(alpha=0.3)
    if index == 0:
      axes.legend(fontsize=5.5, frameon=False)
  figure.suptitle(title, fontsize=common.TITLE_FONT, y=1 - 0.08 / height, va="top")
  return figure


def define_flags(flag_values=FLAGS) -> None:
  define = dict(flag_values=flag_values)
  flags.DEFINE_string("workdir", None, "The trained run's directory.", **define)
  flags.DEFINE_string("output", None, "The figure (.png); the table goes beside it as .json.",
                      **define)
  flags.DEFINE_integer("step", None, "Checkpoint step; default the latest.", **define)
  flags.DEFINE_string("data_dir", None, "TFDS data_dir; default the run config's.", **define)
  flags.DEFINE_string("scenes_dir", None, "Root the scene generator wrote to (the factors).",
                      **define)
  flags.DEFINE_string("split", "test", "Split of the scenes the read-outs are scored on.",
                      **define)
  flags.DEFINE_string("label_split", "train", "Split the labelled scenes come from (after the "
                      "scored ones when it is --split).", **define)
  flags.DEFINE_integer("eval_scenes", 200, "Scenes the read-outs are scored on.", **define)
  flags.DEFINE_integer("label_scenes", 1000, "Labelled scenes at most.", **define)
  flags.DEFINE_integer("context_views", None, "Views per scene; default the config's K.",
                       **define)
  flags.DEFINE_integer("seed", 0, "Seeds the views drawn and the untrained network.", **define)


def main(argv, flag_values=FLAGS) -> None:
  del argv
  from gqn_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from gqn_jax.figures import common  # pylint: disable=g-import-not-at-top
  for name in ("workdir", "output"):
    if not flag_values[name].value:
      raise SystemExit(f"error: --{name} is required")
  output = common.check_suffix(flag_values.output, (".png",), "probe")
  for name in ("eval_scenes", "label_scenes"):
    if flag_values[name].value < 2:
      raise SystemExit(f"error: --{name} must be at least 2, got {flag_values[name].value}")
  checkpoint = checkpoints.load(flag_values.workdir, flag_values.step)
  config = checkpoint.config
  views = flag_values.context_views or config.data.max_context_views
  data_dir = flag_values.data_dir or config.data.get("data_dir")
  import tqdm  # pylint: disable=g-import-not-at-top
  bar = tqdm.tqdm(total=None, unit="fit", desc="probe")

  def progress(index, total, what):
    bar.total = total
    bar.n = index
    bar.set_postfix_str(what)
    bar.refresh()

  results = probe(checkpoint, data_dir=data_dir, scenes_dir=flag_values.scenes_dir,
                  split=flag_values.split, label_split=flag_values.label_split,
                  eval_scenes=flag_values.eval_scenes, label_scenes=flag_values.label_scenes,
                  views=views, seed=flag_values.seed, progress=progress)
  bar.close()
  results["step"] = checkpoint.step
  common.write_bytes(output.with_suffix(".json"), json.dumps(results, indent=1).encode())
  title = (f"Read-outs of the scene factors from r, from an untrained r and from pixels "
           f"({views} views per scene, scored on {len(results['evaluated_scenes'])} "
           f"{flag_values.split} scenes)\n{config.data.dataset}, run "
           f"{common.workdir_name(flag_values.workdir)} at step {checkpoint.step:,}")
  common.save_png(draw(results, title), output)
  print(f"wrote {output} and {output.with_suffix('.json')}")


def run():
  """Console-script entry point (``gqn-probe``)."""
  # CPU-only hosts, before JAX starts: tcmalloc (gqn_jax/allocator.py says why).
  allocator.use_tcmalloc()
  define_flags()
  cli.run(main, __name__)


if __name__ == "__main__":
  run()
