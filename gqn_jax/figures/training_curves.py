"""Training curves from a run's TensorBoard event files: loss, NLL and KL against the step.

Event files are found anywhere under the workdir (the trainer writes ``<workdir>/tensorboard``).
A quantity is any scalar whose tag is its name or ends in ``/<name>`` (``train/loss`` and
``eval/loss`` become two lines of the loss panel), written as a plain scalar or as a TF2 scalar
tensor. Raw values are
drawn faintly and an exponential moving average over them boldly, so that noisy steps do not hide
the trend; series of few points (periodic evaluations) are drawn as they are.
"""

import pathlib

import numpy as np

from gqn_jax import extras
from gqn_jax.figures import common

QUANTITIES = (  # (tag name, panel title)
    ("loss", "loss: -ELBO (nats per image)"),
    ("nll", "NLL (nats per image)"),
    ("kl", "KL (nats per image)"),
)
OPTIONAL = (("loss_bits_per_dim", "loss (bits per dimension)"),)
SIGMA = "sigma"     # the pixel sigma the train lines were computed at; read for a note only.
SMOOTHING = 0.9     # EMA weight of the past.
MIN_POINTS_TO_SMOOTH = 50
PANEL_INCHES = (4.2, 2.8)


def make(request: common.Request):
  """Reads ``request.workdir``'s event files and writes the curves as a PNG; returns the path."""
  output = common.check_suffix(request.output, (".png",), "training_curves")
  curves = read_curves(request.workdir)
  figure = draw(curves, f"Training curves of run {request.workdir.resolve().name}")
  return common.save_png(figure, output)


def event_directories(workdir) -> list[pathlib.Path]:
  """Directories under ``workdir`` (itself included) that hold TensorBoard event files."""
  workdir = pathlib.Path(workdir)
  if not workdir.is_dir():
    raise FileNotFoundError(f"--workdir={workdir}: no such directory")
  found = sorted({path.parent for path in workdir.rglob("events.out.tfevents.*")})
  if not found:
    raise FileNotFoundError(f"--workdir={workdir}: no TensorBoard event files "
                            f"(events.out.tfevents.*) in it or below it")
  return found


def read_scalars(directory) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{tag: (steps int64 [N], values float64 [N])} of every scalar in one event directory."""
  # pylint: disable-next=g-import-not-at-top
  event_accumulator = extras.require("tensorboard.backend.event_processing.event_accumulator",
                                     "figures")
  from tensorboard.util import tensor_util  # pylint: disable=g-import-not-at-top
  accumulator = event_accumulator.EventAccumulator(
      str(directory), size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0})
  accumulator.Reload()
  tags = accumulator.Tags()
  series = {}
  for tag in tags.get(event_accumulator.SCALARS, []):
    events = accumulator.Scalars(tag)
    series[tag] = ([e.step for e in events], [e.value for e in events])
  for tag in tags.get(event_accumulator.TENSORS, []):
    events = accumulator.Tensors(tag)
    values = [tensor_util.make_ndarray(e.tensor_proto) for e in events]
    if values and all(np.size(v) == 1 and np.issubdtype(np.asarray(v).dtype, np.number)
                      for v in values):
      series[tag] = ([e.step for e in events], [float(np.asarray(v).reshape(())) for v in values])
  result = {}
  for tag, (steps, values) in series.items():
    order = np.argsort(steps, kind="stable")  # several files of one run: merge by step.
    result[tag] = (np.asarray(steps, np.int64)[order], np.asarray(values, np.float64)[order])
  return result


def read_curves(workdir) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
  """{quantity: {line name: (steps, values)}} for the quantities found; an error if none is.

  A line is named by its tag's prefix ('train', 'eval' for 'train/loss', 'eval/loss'), and by
  its directory too when several directories hold events.
  """
  workdir = pathlib.Path(workdir)
  directories = event_directories(workdir)
  curves, seen = {}, set()
  for directory in directories:
    place = str(directory.relative_to(workdir)) if directory != workdir else workdir.name
    for tag, series in read_scalars(directory).items():
      seen.add(tag)
      for quantity in [q for q, _ in QUANTITIES + OPTIONAL] + [SIGMA]:
        if tag == quantity or tag.endswith("/" + quantity):
          prefix = tag[:-len(quantity)].rstrip("/")
          if not prefix:
            line = place
          else:
            line = prefix if len(directories) == 1 else f"{place}: {prefix}"
          curves.setdefault(quantity, {})[line] = series
  if not any(quantity in curves for quantity, _ in QUANTITIES):
    raise ValueError(f"--workdir={workdir}: its event files hold no scalar named "
                     f"{', '.join(q for q, _ in QUANTITIES)} (or ending in /<name>); found "
                     f"{sorted(seen) or 'no scalars'}")
  return curves


def smooth(values, weight: float = SMOOTHING) -> np.ndarray:
  """Exponential moving average, debiased at the start (as TensorBoard draws it)."""
  values = np.asarray(values, np.float64)
  result, average = np.empty_like(values), 0.0
  for index, value in enumerate(values):
    average = weight * average + (1 - weight) * value
    result[index] = average / (1 - weight ** (index + 1))
  return result


def panels(curves) -> list[tuple[str, str]]:
  return [(q, title) for q, title in QUANTITIES + OPTIONAL if q in curves]


def figure_inches(count: int) -> tuple[float, float]:
  columns = min(count, 2)
  rows = -(-count // columns)
  return columns * PANEL_INCHES[0] + 0.2, rows * PANEL_INCHES[1] + 0.8


def draw(curves, title: str):
  """One panel per quantity found; one line per event directory."""
  shown = panels(curves)
  width, height = figure_inches(len(shown))
  figure = common.new_figure(width, height)
  columns = min(len(shown), 2)
  grid = figure.add_gridspec(-(-len(shown) // columns), columns, left=0.1, right=0.97,
                             top=1 - 0.6 / height, bottom=0.85 / height, wspace=0.3,
                             hspace=0.55)
  # One colour per line name in every panel.
  names = sorted({line for quantity, _ in shown for line in curves[quantity]})
  for index, (quantity, panel_title) in enumerate(shown):
    axes = figure.add_subplot(grid[index // columns, index % columns])
    for line, (steps, values) in sorted(curves[quantity].items()):
      colour = f"C{names.index(line) % 10}"
      if len(values) < MIN_POINTS_TO_SMOOTH:  # e.g. periodic evaluations: every point counts.
        axes.plot(steps, values, "o-", color=colour, lw=1.6, ms=3, label=line)
        continue
      axes.plot(steps, values, color=colour, alpha=0.25, lw=0.8)
      axes.plot(steps, smooth(values), color=colour, lw=1.6, label=line)
    axes.set_title(panel_title, fontsize=common.TITLE_FONT)
    axes.set_xlabel("step", fontsize=common.LABEL_FONT)
    axes.tick_params(labelsize=7)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=6, frameon=False)
  figure.suptitle(title, fontsize=common.TITLE_FONT + 1, y=1 - 0.1 / height, va="top")
  note = sigma_note(curves)
  if note:
    figure.text(0.5, 0.12 / height, note, ha="center", va="bottom", fontsize=7, color="0.3")
  return figure


def sigma_note(curves) -> str | None:
  """A footnote on the pixel sigma of the lines, when the run logged it.

  The NLL depends on the sigma it is computed at: the trainer's train lines use the annealed
  sigma and its eval lines optim.sigma_final, so their levels differ by more than the fit.
  """
  for line, (_, values) in sorted(curves.get(SIGMA, {}).items()):
    if len(values):
      return (f"{line} lines are at the annealed pixel sigma ({values[0]:.2f} -> "
              f"{values[-1]:.2f} here) and the trainer evaluates at optim.sigma_final:\n"
              f"train and eval levels differ by the sigma as well as by the fit.")
  return None
