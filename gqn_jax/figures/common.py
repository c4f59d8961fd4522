"""What every figure shares: its request, drawing images on axes, saving PNGs and GIFs.

Figures draw on ``matplotlib.figure.Figure`` with the Agg canvas directly, never through pyplot,
so they need no display and leave matplotlib's global state alone. A figure's layout fixes its
size in inches and ``pixels`` its size in pixels, exactly (no tight bounding box), so tests can
check it.

Workdirs and outputs are ``etils.epath`` paths, as in training: local, or URLs such as
``gs://bucket/run``. Files are encoded in memory and written as bytes through epath.
"""

import dataclasses
import io
from typing import Any

from etils import epath
import numpy as np

from gqn_jax import extras

DPI = 100
CELL_INCHES = 1.1      # one image panel, whatever the model's resolution (upsampled, nearest).
TITLE_FONT = 9
LABEL_FONT = 8


@dataclasses.dataclass
class Request:
  """Everything a figure may use; each figure reads what it needs."""
  output: epath.Path
  workdir: epath.Path
  checkpoint: Any = None          # checkpoints.Checkpoint; None for figures that need none.
  data_dir: str | None = None     # TFDS data_dir of the held-out scenes.
  scenes_dir: str | None = None   # root of generated scenes, for their factors.
  split: str = "test"
  scenes: int | None = None       # scenes (rows / points); None: the figure's default.
  first_scene: int = 0            # index of the first scene used in the split.
  context_views: int | None = None  # None: the config's max_context_views (K).
  samples: int | None = None      # prior samples; None: the figure's default.
  ring_size: int = 36             # flyaround: frames (query poses on the ring).
  frame_ms: int = 100             # flyaround: milliseconds per frame.
  factors: tuple[str, ...] = ()   # representation_space: factors to colour by; () for all.
  seed: int = 0


def pixels(inches: float) -> int:
  """Pixels of a figure side of ``inches`` inches (``new_figure`` makes it exactly this)."""
  return int(round(inches * DPI))


def new_figure(width: float, height: float):
  """A Figure of about ``width`` x ``height`` inches on an Agg canvas, ``pixels`` of each.

  Agg truncates inches * dpi to whole pixels; a size a hair above the whole number keeps
  float error from losing a pixel.
  """
  FigureCanvasAgg = extras.require("matplotlib.backends.backend_agg", "figures").FigureCanvasAgg
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  figure = Figure(figsize=((pixels(width) + 0.01) / DPI, (pixels(height) + 0.01) / DPI), dpi=DPI)
  FigureCanvasAgg(figure)
  return figure


def show(axes, image, title: str | None = None, **kwargs) -> None:
  """An image (float [H, W, 3] in [0, 1], or [H, W] with a colour map) without ticks."""
  axes.imshow(np.clip(image, 0.0, 1.0) if np.ndim(image) == 3 else image,
              interpolation="nearest", **kwargs)
  axes.set_xticks([])
  axes.set_yticks([])
  if title:
    axes.set_title(title, fontsize=LABEL_FONT, pad=3)


def check_suffix(path, allowed: tuple[str, ...], figure: str) -> epath.Path:
  path = epath.Path(path)
  if path.suffix.lower() not in allowed:
    raise ValueError(f"--output={path}: the {figure} figure is written as "
                     f"{' or '.join(allowed)}, not {path.suffix or 'a file without a suffix'}")
  return path


def write_bytes(path, data: bytes) -> epath.Path:
  """Writes ``data`` to ``path`` (local or a URL), making its directory first."""
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(data)
  return path


def save_png(figure, path) -> epath.Path:
  buffer = io.BytesIO()  # matplotlib and PIL write files through open(): not to a gs:// URL.
  figure.savefig(buffer, format="png", dpi=figure.dpi, facecolor="white")
  return write_bytes(path, buffer.getvalue())


def figure_pixels(figure) -> np.ndarray:
  """The figure rendered to uint8 [H, W, 3]."""
  figure.canvas.draw()
  return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def save_gif(frames: list[np.ndarray], path, frame_ms: int) -> epath.Path:
  """uint8 [H, W, 3] frames -> an endlessly looping GIF, one palette for all frames."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  # One palette from all frames (tiled into one image), so colours do not flicker between frames.
  palette = Image.fromarray(np.concatenate(frames, axis=0)).quantize(
      colors=255, method=Image.Quantize.MEDIANCUT)
  images = [Image.fromarray(frame).quantize(palette=palette, dither=Image.Dither.NONE)
            for frame in frames]
  # disposal=1 and no optimize: every frame is stored whole, so none is merged away.
  buffer = io.BytesIO()
  images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                 duration=frame_ms, loop=0, optimize=False, disposal=1)
  return write_bytes(path, buffer.getvalue())


def context_views(request: Request) -> int:
  """M for figures that show a fixed number of views: --context_views, else the config's K."""
  config = request.checkpoint.config
  views = request.context_views or config.data.max_context_views
  if views < 1:
    raise ValueError(f"--context_views must be a positive integer, got {views}")
  return views


def checkpoint_title(request: Request) -> str:
  """'<dataset>, run <workdir name> at step <step>' for figure titles."""
  checkpoint = request.checkpoint
  step = "" if checkpoint.step is None else f" at step {checkpoint.step:,}"
  return f"{checkpoint.config.data.dataset}, run {workdir_name(request.workdir)}{step}"


def workdir_name(workdir) -> str:
  """The run directory's own name: of the absolute path ('.' has none), or the URL's last part.

  ``resolve`` would make a URL into a local path below the current directory.
  """
  workdir = epath.Path(workdir)
  return workdir.name if "://" in str(workdir) else workdir.resolve().name


def held_out_scenes(request: Request, count: int, with_factors: bool = False):
  """Scenes first_scene .. first_scene + count - 1 of the request's split, at the model's size."""
  from gqn_jax.figures import scenes  # pylint: disable=g-import-not-at-top
  config = request.checkpoint.config
  return scenes.read_scenes(
      config.data.dataset, request.split, request.data_dir, count=count,
      image_size=config.model.image_size, pose_order=config.model.pose_order,
      first=request.first_scene, with_factors=with_factors, scenes_dir=request.scenes_dir)


def inference(request: Request):
  from gqn_jax import model  # pylint: disable=g-import-not-at-top
  return model.Inference(request.checkpoint.model_config, request.checkpoint.params)


def flat_representations(model, scenes, views: int, seed: int, batch: int = 32) -> np.ndarray:
  """[N, D] float64: each scene's r from ``Scene.views(seed, views)`` (summed over its views,
  ``Inference.pooled``), flattened."""
  rows = []
  for start in range(0, len(scenes), batch):
    chunk = scenes[start:start + batch]
    chosen = [scene.views(seed, views) for scene in chunk]
    r = model.pooled(model.represent(np.stack([s.images(c) for s, c in zip(chunk, chosen)]),
                                     np.stack([s.poses[c] for s, c in zip(chunk, chosen)])))
    rows.append(np.asarray(r, np.float64).reshape(len(chunk), -1))
  return np.concatenate(rows)


def prior_samples(model, r, query_poses, samples: int, seed: int) -> np.ndarray:
  """float32 [B, S, H, W, 3] in [0, 1]: S prior samples of each row's query view.

  Sample s of row b depends only on (seed, s, b), so a figure shows the same samples every time.
  """
  import jax  # pylint: disable=g-import-not-at-top
  key = jax.random.key(seed)
  batch = query_poses.shape[0]
  drawn = [np.asarray(model.render(r, query_poses, model.noise(jax.random.fold_in(key, s), batch)))
           for s in range(samples)]
  return np.clip(np.stack(drawn, axis=1), 0.0, 1.0)


def positive(value, flag: str, default: int) -> int:
  """A flag's value or the figure's default; a clear error for anything below 1."""
  value = default if value is None else value
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f"--{flag} must be a positive integer, got {value!r}")
  return value
