"""A fly-around: one held-out scene rendered from a ring of query poses, as an animated GIF.

The ring is built from the scene's own cameras, so it fits every family: radius and height are
the means of the cameras' horizontal distance from the scene's vertical axis and of their
heights, the pitch is their mean pitch, and every camera faces the axis. For rooms with a ring
camera this is the dataset's ring; for Shepard-Metzler, a circle around the object.

Every frame uses the same latent draw, so the frames show one consistent sample turning, not a
new sample per frame.
"""

import numpy as np

from gqn_jax import poses as poses_lib
from gqn_jax.figures import common

FRAME_INCHES = (6.4, 2.6)   # (width, height) of every frame.


def make(request: common.Request):
  """Renders the GIF for ``request`` (scene --first_scene of the split); returns the path."""
  output = common.check_suffix(request.output, (".gif",), "flyaround")
  ring_size = common.positive(request.ring_size, "ring_size", 36)
  frame_ms = common.positive(request.frame_ms, "frame_ms", 100)
  views = common.context_views(request)
  scene = common.held_out_scenes(request, 1)[0]
  chosen = scene.views(request.seed, views)
  config = request.checkpoint.config
  cameras = ring_cameras(scene.cameras, ring_size)
  query_poses = poses_lib.camera_to_pose(cameras, config.model.pose_order).astype(np.float32)
  model = common.inference(request)
  context = scene.images(chosen)                                    # [K, H, W, 3]
  r = model.represent(context[None], scene.poses[None, chosen])
  r = np.repeat(np.asarray(r), ring_size, axis=0)
  # One noise draw for all frames: row 0's noise, repeated.
  import jax  # pylint: disable=g-import-not-at-top
  noise = np.repeat(np.asarray(model.noise(jax.random.key(request.seed), 1)), ring_size, axis=0)
  rendered = np.clip(np.asarray(model.render(r, query_poses, noise)), 0.0, 1.0)
  title = (f"Fly-around of {request.split} scene {request.first_scene}: "
           f"{common.checkpoint_title(request)}")
  frames = [draw_frame(context, scene.cameras[chosen], cameras, index,
                       rendered[index], title) for index in range(ring_size)]
  return common.save_gif(frames, output, frame_ms)


def ring_cameras(scene_cameras, count: int) -> np.ndarray:
  """``count`` camera records [count, 5] evenly spaced on the scene cameras' ring (docstring)."""
  if count < 1:
    raise ValueError(f"ring size must be a positive integer, got {count}")
  scene_cameras = np.asarray(scene_cameras, np.float64)
  radius = float(np.mean(np.hypot(scene_cameras[:, 0], scene_cameras[:, 1])))
  height = float(np.mean(scene_cameras[:, 2]))
  pitch = float(np.mean(scene_cameras[:, 4]))
  angle = np.linspace(-np.pi, np.pi, count, endpoint=False)
  yaw = (angle + 2 * np.pi) % (2 * np.pi) - np.pi  # facing the axis: the opposite direction.
  return np.stack([radius * np.cos(angle), radius * np.sin(angle), np.full(count, height),
                   yaw, np.full(count, pitch)], axis=1).astype(np.float32)


def draw_frame(context, context_cameras, ring, index: int, rendered, title: str) -> np.ndarray:
  """One frame, uint8 [H, W, 3]: the context views, the rendered view, and a map of the cameras."""
  width, height = FRAME_INCHES
  figure = common.new_figure(width, height)
  views = len(context)
  columns = min(views, 3)
  rows = -(-views // columns)
  grid = figure.add_gridspec(rows, columns, left=0.02, right=0.36, top=0.82, bottom=0.05,
                             wspace=0.05, hspace=0.25)
  for k in range(views):
    common.show(figure.add_subplot(grid[k // columns, k % columns]), context[k],
                f"context {k + 1}")
  common.show(figure.add_axes([0.39, 0.05, 0.3, 0.74]), rendered,
              f"query {index + 1}/{len(ring)} (yaw {np.degrees(ring[index, 3]):+.0f}°)")
  overhead = figure.add_axes([0.75, 0.2, 0.22, 0.6])
  overhead.plot(ring[:, 0], ring[:, 1], ".", color="0.75", ms=3, label="ring")
  overhead.plot(context_cameras[:, 0], context_cameras[:, 1], "s", color="C0", ms=5,
                label="context")
  overhead.plot(ring[index, 0], ring[index, 1], "o", color="C3", ms=7, label="query")
  arrow = 0.35 * float(np.max(np.abs(ring[:, :2]))) + 1e-6
  overhead.annotate("", xy=(ring[index, 0] + arrow * np.cos(ring[index, 3]),
                            ring[index, 1] + arrow * np.sin(ring[index, 3])),
                    xytext=(ring[index, 0], ring[index, 1]),
                    arrowprops=dict(arrowstyle="->", color="C3"))
  overhead.set_aspect("equal", adjustable="datalim")
  overhead.set_title("cameras, from above", fontsize=common.LABEL_FONT)
  overhead.tick_params(labelsize=6)
  overhead.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3,
                  frameon=False, handletextpad=0.2, columnspacing=0.8)
  figure.suptitle(title, fontsize=common.TITLE_FONT, y=0.97)
  return common.figure_pixels(figure)
