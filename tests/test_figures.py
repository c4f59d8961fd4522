"""Figures: each command writes a valid image of the expected size; the laws behind each figure."""

import io
import json
import math

from absl import app
from absl import flags
import numpy as np
import pytest
from PIL import Image

import _figures_run
from gqn_jax import render
from gqn_jax.data import frames as data_frames
from gqn_jax.figures import common
from gqn_jax.figures import flyaround
from gqn_jax.figures import novel_views
from gqn_jax.figures import representation_space
from gqn_jax.figures import scene_algebra
from gqn_jax.figures import scenes as scenes_lib
from gqn_jax.figures import self_correction
from gqn_jax.figures import training_curves
from gqn_jax.figures import uncertainty
from gqn_jax.scenes import camera

K = _figures_run.run_config(None).data.max_context_views  # of the tiny config.


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """(workdir with a checkpoint and event files, scenes_dir with factors, written scenes)."""
  data_dir, written = _figures_run.prepared_data(tmp_path_factory)
  root = tmp_path_factory.mktemp("figures")
  workdir = _figures_run.write_run(root / "run", _figures_run.run_config(data_dir),
                                   _figures_run.trained_state())
  events = _figures_run.write_events(workdir / "tensorboard")
  scenes_dir = _figures_run.write_factors(root / "scenes", written["test"])
  return workdir, scenes_dir, events


@pytest.fixture(scope="module")
def attention_run(tmp_path_factory, run):
  """The same run with view attention (model.view_attention): r keeps every view."""
  data_dir, _ = _figures_run.prepared_data(tmp_path_factory)
  root = tmp_path_factory.mktemp("figures_attention")
  workdir = _figures_run.write_run(root / "run", _figures_run.run_config(data_dir, True),
                                   _figures_run.trained_state(view_attention=True))
  return workdir, run[1]


def _render(figure, workdir, output, *options):
  flag_values = flags.FlagValues()
  render.define_flags(flag_values)
  flag_values(["gqn-render", f"--workdir={workdir}", f"--output={output}", *options])
  return render.render(["gqn-render", figure], flag_values)


def _expected(inches):
  return tuple(common.pixels(v) for v in inches)


# --- novel_views -------------------------------------------------------------------------------

def test_novel_views_writes_a_png_of_one_row_per_scene(run, tmp_path):
  workdir, _, _ = run
  path = _render("novel_views", workdir, tmp_path / "novel.png", "--scenes=2", "--samples=3")
  assert _figures_run.image_size_of(path) == _expected(novel_views.figure_inches(2, K, 3))
  # One more context view (given on the command line) makes the figure wider by one cell.
  wider = _render("novel_views", workdir, tmp_path / "wider.png", "--scenes=2", "--samples=3",
                  "--context_views=4")
  assert _figures_run.image_size_of(wider) == _expected(novel_views.figure_inches(2, K + 1, 3))
  assert (_figures_run.image_size_of(wider)[0] - _figures_run.image_size_of(path)[0]
          == round(common.CELL_INCHES * common.DPI))


def test_scene_views_are_distinct_and_fixed_by_seed_and_name():
  cameras, poses = np.zeros((10, 5), np.float32), np.zeros((10, 7), np.float32)
  scene = scenes_lib.Scene("test/1-of-1.tfrecord#0", (b"",) * 10, cameras, poses, 8, None)
  other = scenes_lib.Scene("test/1-of-1.tfrecord#1", (b"",) * 10, cameras, poses, 8, None)
  views = scene.views(0, 10)
  assert sorted(views.tolist()) == list(range(10))
  np.testing.assert_array_equal(scene.views(0, 4), views[:4])  # nested: more views add frames.
  assert scene.views(1, 10).tolist() != views.tolist()
  assert other.views(0, 10).tolist() != views.tolist()
  with pytest.raises(ValueError, match="cannot draw 11 distinct views of 10 frames"):
    scene.views(0, 11)


def test_context_and_query_hold_the_drawn_frames(run):
  """Frames of a scene's record come back decoded, at the model's size, beside their poses."""
  workdir, _, _ = run
  config = _checkpoint_config(workdir)
  scenes = scenes_lib.read_scenes(config.data.dataset, "test", config.data.data_dir, count=2,
                                  image_size=12, first=3)
  context, context_poses, query, query_poses = scenes_lib.context_and_query(scenes, K, seed=5)
  assert context.shape == (2, K, 12, 12, 3) and query.shape == (2, 12, 12, 3)
  for row, scene in enumerate(scenes):
    chosen = scene.views(5, K + 1)
    np.testing.assert_array_equal(context[row], scene.images(chosen[:K]))
    np.testing.assert_array_equal(query[row], scene.images(chosen[K:])[0])
    np.testing.assert_array_equal(context_poses[row], scene.poses[chosen[:K]])
    np.testing.assert_array_equal(query_poses[row], scene.poses[chosen[K]])
    expected = np.asarray(Image.open(io.BytesIO(scene.jpegs[chosen[K]])), np.float32) / 255.0
    np.testing.assert_allclose(scene.images(chosen[K:])[0],
                               data_frames.resize(expected, 12), atol=1e-5)


def test_source_name_of_tfds_configs():
  for name in ("rooms_ring_camera", "generated_rooms_ring_camera",
               "generated_rooms_ring_camera-skip_bad", "gqn/rooms_ring_camera:1.0.0",
               "gqn/generated_rooms_ring_camera/1.0.0"):
    assert scenes_lib.source_name(name) == "rooms_ring_camera", name


def _checkpoint_config(workdir):
  from gqn_jax import checkpoints  # pylint: disable=g-import-not-at-top
  return checkpoints.load_for_inference(workdir)[0]


# --- uncertainty -------------------------------------------------------------------------------

def test_pixel_variance_against_hand_computed_values():
  samples = np.zeros((2, 4, 4, 3), np.float32)  # [S, H, W, 3]
  samples[0, 1, 2] = [1.0, 0.0, 0.0]  # one sample differs, in one channel of one pixel.
  variance = uncertainty.pixel_variance(samples)
  expected = np.zeros((4, 4))
  expected[1, 2] = 0.25 / 3  # the variance of {0, 1} is 1/4, averaged over 3 channels.
  np.testing.assert_allclose(variance, expected)
  assert uncertainty.pixel_variance(np.repeat(samples[:1], 5, axis=0)).max() == 0.0


def test_uncertainty_writes_a_png(run, tmp_path):
  workdir, _, _ = run
  path = _render("uncertainty", workdir, tmp_path / "uncertainty.png", "--scenes=2",
                 "--samples=3")
  assert _figures_run.image_size_of(path) == _expected(uncertainty.figure_inches(2, K))
  with pytest.raises(ValueError, match="--samples must be at least 2"):
    _render("uncertainty", workdir, tmp_path / "u.png", "--samples=1")


# --- self_correction ---------------------------------------------------------------------------

def test_path_sweeps_one_way_round_and_never_visits_the_targets(run):
  workdir, _, _ = run
  data_dir = _checkpoint_config(workdir).data.data_dir
  scene = scenes_lib.read_scenes(_figures_run.DATASET, "test", data_dir, count=1,
                                 image_size=8)[0]
  path, targets = self_correction.path_and_targets(scene, 5, seed=3)
  assert len(path) == 5 and len(targets) == self_correction.TARGETS
  assert not set(path) & set(targets)
  turns = np.mod(np.diff(scene.cameras[path, 3]), 2 * np.pi)
  assert np.all(np.cumsum(turns) < 2 * np.pi)  # headings increase, less than one full turn.
  again = self_correction.path_and_targets(scene, 5, seed=3)
  np.testing.assert_array_equal(again[0], path)
  with pytest.raises(ValueError, match="need 13 frames"):
    self_correction.path_and_targets(scene, 10, seed=3)


def test_self_correction_writes_a_png(run, tmp_path):
  workdir, _, _ = run
  path = _render("self_correction", workdir, tmp_path / "walk.png", "--scenes=2", "--samples=2")
  with Image.open(path) as image:
    assert image.format == "PNG"


# --- flyaround ---------------------------------------------------------------------------------

def test_ring_cameras_face_the_axis_at_the_scene_cameras_mean_radius_and_height():
  rng = np.random.default_rng(0)
  scene_cameras = camera.on_ring(rng, 10, 3.0, 1.6, (0.0, 0.0, 0.5))
  ring = flyaround.ring_cameras(scene_cameras, 12)
  assert ring.shape == (12, 5)
  np.testing.assert_allclose(np.hypot(ring[:, 0], ring[:, 1]), 3.0, rtol=1e-5)
  np.testing.assert_allclose(ring[:, 2], 1.6, rtol=1e-6)
  # Every camera looks at the axis: the same cameras camera.facing would make for its target.
  np.testing.assert_allclose(ring, camera.facing(ring[:, :3], (0.0, 0.0, 0.5)), atol=1e-5)
  angles = np.sort(np.arctan2(ring[:, 1], ring[:, 0]))
  np.testing.assert_allclose(np.diff(angles), 2 * math.pi / 12, atol=1e-5)  # evenly spaced.


def test_flyaround_writes_a_gif_with_a_frame_per_ring_pose(run, tmp_path):
  workdir, _, _ = run
  path = _render("flyaround", workdir, tmp_path / "fly.gif", "--ring_size=5", "--frame_ms=80")
  with Image.open(path) as gif:
    assert gif.format == "GIF" and gif.n_frames == 5
    assert gif.size == _expected(flyaround.FRAME_INCHES)
    assert gif.info["duration"] == 80 and gif.info["loop"] == 0
  with pytest.raises(ValueError, match="flyaround figure is written as .gif, not .png"):
    _render("flyaround", workdir, tmp_path / "fly.png")


# --- scene_algebra -----------------------------------------------------------------------------

def test_analogies_differ_in_one_factor_at_a_time():
  for a, b, c, d in scene_algebra.choose_analogies(20, seed=3):
    assert a[0] == b[0] and a[1] != b[1]  # A, B: same shape, other colour.
    assert b[1] == c[1] and b[0] != c[0]  # B, C: same colour, other shape.
    assert d == (c[0], a[1])              # D: C's shape, A's colour.


def test_relative_distance_is_zero_for_additive_representations():
  rng = np.random.default_rng(0)
  shape = {name: rng.normal(size=8) for name in ("box", "cone")}
  colour = {name: rng.normal(size=8) for name in ("red", "blue")}
  r = lambda s, c: shape[s] + colour[c]
  assert scene_algebra.relative_distance(r("box", "red"), r("box", "blue"), r("cone", "blue"),
                                         r("cone", "red")) < 1e-12
  # r(A) itself lands at ratio 1: A - B + B = A.
  assert math.isclose(scene_algebra.relative_distance(
      r("box", "red"), r("cone", "blue"), r("cone", "blue"), r("cone", "red")), 1.0)


def test_controlled_scenes_differ_only_where_the_object_is():
  """A red and a blue box in the same room: pixels differ only where the box is seen."""
  from gqn_jax.figures import controlled_scenes  # pylint: disable=g-import-not-at-top
  from gqn_jax.scenes import worker  # pylint: disable=g-import-not-at-top
  family, size = "rooms_ring_camera", 32
  cameras = controlled_scenes.ring(3, seed=0)
  red = controlled_scenes.room(family, "box", "red", background=0)
  blue = controlled_scenes.room(family, "box", "blue", background=0)
  frames = [worker.call("render_factors", f, cameras, size) for f in (red, blue)]
  seen = worker.call("geom_masks", red, cameras, size, ["object0_box"])[0]  # [S, H, W]
  assert seen.any(axis=(1, 2)).all(), "the box is in every view"
  # Multisampling blends the object into the pixels along its outline: one pixel of margin.
  near = seen.copy()
  for axis in (1, 2):
    for shift in (-1, 1):
      near |= np.roll(seen, shift, axis=axis)
  difference = np.any(frames[0] != frames[1], axis=-1)
  assert not difference[~near].any(), "pixels away from the object changed"
  assert difference[seen].mean() > 0.9
  with pytest.raises(ValueError, match="not a rooms family"):
    controlled_scenes.room("shepard_metzler_5_parts", "box", "red", background=0)


def test_scene_algebra_writes_a_png(run, tmp_path):
  workdir, _, _ = run
  path = _render("scene_algebra", workdir, tmp_path / "algebra.png", "--scenes=1",
                 "--samples=2")
  assert _figures_run.image_size_of(path) == _expected(scene_algebra.figure_inches(1, 2))


# --- representation_space ----------------------------------------------------------------------

def test_pca_recovers_a_plane_up_to_rotation():
  """Points on a 2-D plane in 50-D: the projection keeps every pairwise distance."""
  rng = np.random.default_rng(0)
  plane = rng.normal(size=(40, 2)) * [3.0, 1.0]
  basis, _ = np.linalg.qr(rng.normal(size=(50, 2)))
  vectors = plane @ basis.T + 5.0
  points, shares = representation_space.pca_2d(vectors)
  distance = lambda x: np.linalg.norm(x[:, None] - x[None], axis=-1)
  np.testing.assert_allclose(distance(points), distance(plane), atol=1e-8)
  np.testing.assert_allclose(shares.sum(), 1.0)
  assert shares[0] > shares[1]
  # The sign of each component is fixed: a mirrored input gives the same picture.
  np.testing.assert_allclose(representation_space.pca_2d(-vectors)[0], points, atol=1e-8)


def test_tsne_keeps_separated_clusters_apart():
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(3, 40)) * 10
  vectors = np.concatenate([c + rng.normal(size=(15, 40)) for c in centres])
  cluster = np.repeat(np.arange(3), 15)
  points = representation_space.tsne_2d(vectors, seed=0)
  assert points.shape == (45, 2)
  distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
  np.fill_diagonal(distances, np.inf)
  assert np.all(cluster[np.argmin(distances, axis=1)] == cluster)
  np.testing.assert_array_equal(representation_space.tsne_2d(vectors, seed=0), points)


def test_factor_labels():
  factors = {"objects": [{"shape": "cone", "rgb": [0.1, 0.2, 0.9]}],
             "wall": {"colour": "red"}, "floor": {"colour": "white"}}
  labels = {name: f(factors) for name, f in representation_space.FACTORS["rooms"].items()}
  assert labels == {"object_count": "1 object", "object_shape": "cone",
                    "object_colour": "blue", "wall": "red", "floor": "white"}
  factors["objects"].append({"shape": "box", "rgb": [1.0, 0.0, 0.0]})
  assert representation_space.FACTORS["rooms"]["object_shape"](factors) == "several objects"
  assert representation_space.hue_name([1.0, 0.0, 0.0]) == "red"
  assert representation_space.hue_name([0.0, 1.0, 0.0]) == "green"


def test_representation_space_writes_a_png_per_factor(run, tmp_path):
  workdir, scenes_dir, _ = run
  path = _render("representation_space", workdir, tmp_path / "space.png", "--scenes=9",
                 f"--scenes_dir={scenes_dir}", "--factors=object_count,floor,object_shape")
  assert _figures_run.image_size_of(path) == _expected(representation_space.figure_inches(3))
  with pytest.raises(ValueError, match="unknown factor.*'height'.*known: object_count"):
    _render("representation_space", workdir, tmp_path / "s.png", "--scenes=9",
            f"--scenes_dir={scenes_dir}", "--factors=height")
  with pytest.raises(FileNotFoundError, match=r"no factors for scene test/.*factors.jsonl "
                     r"\(missing\)"):
    _render("representation_space", workdir, tmp_path / "s.png", "--scenes=9",
            f"--scenes_dir={tmp_path}")


def test_factors_are_taken_only_from_the_generation_run_that_made_the_scene(tmp_path):
  """Two generation runs name their shards alike: the sidecar whose re-sampled cameras match the
  stored ones is the scene's, whichever root comes first."""
  from gqn_jax.scenes import scene as scene_lib  # pylint: disable=g-import-not-at-top
  family = "rooms_ring_camera"
  mine, _ = scene_lib.sample_scene(family, "test", 1, 0)
  stored_cameras = scene_lib.sample_scene(family, "test", 1, 0)[1]
  other, _ = scene_lib.sample_scene(family, "test", 1, 7)  # another seed: another scene.
  for root, factors in (("other_run", other), ("my_run", mine)):
    directory = tmp_path / root / family / "test"
    directory.mkdir(parents=True)
    lines = [json.dumps({"index": 0}), json.dumps(factors)]
    (directory / "1-of-1.tfrecord.factors.jsonl").write_text("\n".join(lines) + "\n")
  roots = [tmp_path / "other_run", tmp_path / "my_run"]
  found = scenes_lib.scene_factors(roots, family, "test/1-of-1.tfrecord#1", stored_cameras)
  assert found == json.loads(json.dumps(mine))
  with pytest.raises(FileNotFoundError, match="other_run.*another generation run"):
    scenes_lib.scene_factors(roots[:1], family, "test/1-of-1.tfrecord#1", stored_cameras)
  assert scenes_lib.belongs_to({"objects": []}, stored_cameras)  # uncheckable factors pass.


# --- training_curves ---------------------------------------------------------------------------

def test_training_curves_read_back_what_the_trainer_wrote(run):
  workdir, _, written = run
  curves = training_curves.read_curves(workdir)
  for quantity, lines in (("loss", ("train", "eval")), ("nll", ("train",)), ("kl", ("train",))):
    assert sorted(curves[quantity]) == sorted(lines)
    for line in lines:
      steps, values = curves[quantity][line]
      expected = written[f"{line}/{quantity}"]
      np.testing.assert_array_equal(steps, [s for s, _ in expected])
      np.testing.assert_allclose(values, [v for _, v in expected], rtol=1e-6)
  # The pixel sigma is read for the footnote only, from its first to its last value.
  assert "sigma" not in dict(training_curves.panels(curves))
  assert "(2.00 -> 0.70 here)" in training_curves.sigma_note(curves)


def test_smoothing_keeps_constants_and_follows_a_step():
  np.testing.assert_allclose(training_curves.smooth(np.full(20, 3.5)), 3.5)
  smoothed = training_curves.smooth(np.r_[np.zeros(50), np.ones(200)])
  assert np.all(np.diff(smoothed) >= 0) and smoothed[-1] > 0.999 and smoothed[49] == 0.0


def test_training_curves_writes_a_png_without_a_checkpoint(run, tmp_path):
  workdir, _, _ = run
  logs_only = tmp_path / "logs_only"
  _figures_run.write_events(logs_only / "tensorboard", steps=range(0, 30, 3))
  for source in (workdir, logs_only):
    path = _render("training_curves", source, tmp_path / f"{source.name}.png")
    assert _figures_run.image_size_of(path) == _expected(training_curves.figure_inches(3))


def test_training_curves_errors_name_the_workdir(tmp_path):
  with pytest.raises(FileNotFoundError, match=f"--workdir={tmp_path}: no TensorBoard event"):
    _render("training_curves", tmp_path, tmp_path / "c.png")
  from gqn_jax import logging_utils  # pylint: disable=g-import-not-at-top
  writer = logging_utils.SummaryWriter(tmp_path / "tensorboard")
  writer.scalars(1, {"train/sigma": 2.0})
  writer.close()
  with pytest.raises(ValueError, match=r"no scalar named loss, nll, kl.*train/sigma"):
    _render("training_curves", tmp_path, tmp_path / "c.png")


# --- the command line --------------------------------------------------------------------------

def test_cli_errors_name_the_figure_or_flag(run, tmp_path):
  workdir, _, _ = run
  with pytest.raises(app.UsageError, match="unknown figure 'novel_view'; one of: novel_views"):
    _render("novel_view", workdir, tmp_path / "x.png")
  with pytest.raises(FileNotFoundError, match="nowhere: no such directory"):
    _render("novel_views", tmp_path / "nowhere", tmp_path / "x.png")
  with pytest.raises(FileNotFoundError, match="no checkpoint in workdir"):
    _render("novel_views", tmp_path, tmp_path / "x.png")
  with pytest.raises(ValueError, match="novel_views figure is written as .png, not .jpg"):
    _render("novel_views", workdir, tmp_path / "x.jpg")
  with pytest.raises(ValueError, match="--scenes must be a positive integer, got 0"):
    _render("novel_views", workdir, tmp_path / "x.png", "--scenes=0")


# --- a model whose r keeps the views (model.view_attention) -----------------------------------

@pytest.mark.parametrize("figure, options, size", [
    ("novel_views", ("--scenes=2", "--samples=2"), lambda: novel_views.figure_inches(2, K, 2)),
    ("scene_algebra", ("--scenes=1", "--samples=2"), lambda: scene_algebra.figure_inches(1, 2)),
    ("representation_space", ("--scenes=9", "--factors=object_count,floor"),
     lambda: representation_space.figure_inches(2)),
])
def test_figures_of_a_view_attention_model(attention_run, tmp_path, figure, options, size):
  """Each figure that reads r takes the per-view r of view attention: rendered from it, added
  and subtracted (scene algebra: the scenes share their poses), or summed over views to map
  scenes (representation space)."""
  workdir, scenes_dir = attention_run
  if figure == "representation_space":
    options = (*options, f"--scenes_dir={scenes_dir}")
  path = _render(figure, workdir, tmp_path / f"{figure}.png", *options)
  assert _figures_run.image_size_of(path) == _expected(size())
