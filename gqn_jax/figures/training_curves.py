"""Training curves from a run's TensorBoard event files: loss, NLL and KL against the step.

Event files are found anywhere under the workdir (the trainer writes ``<workdir>/tensorboard``),
local or at a URL such as ``gs://bucket/run``: they are listed and read through ``etils.epath``,
as training writes the workdir, so reading needs TensorBoard's protos but not TensorFlow.
A quantity is any scalar whose tag is its name or ends in ``/<name>`` (``train/loss`` and
``eval/loss`` become two lines of the loss panel), written as a plain scalar or as a TF2 scalar
tensor. Raw values are
drawn faintly and an exponential moving average over them boldly, so that noisy steps do not hide
the trend; series of few points (periodic evaluations) are drawn as they are.
"""

import logging
import struct
from typing import Iterator

from etils import epath
import numpy as np

from gqn_jax import extras
from gqn_jax import logging_utils
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
EVENT_FILE_PREFIX = "events.out.tfevents."


def make(request: common.Request):
  """Reads ``request.workdir``'s event files and writes the curves as a PNG; returns the path."""
  output = common.check_suffix(request.output, (".png",), "training_curves")
  curves = read_curves(request.workdir)
  figure = draw(curves, f"Training curves of run {common.workdir_name(request.workdir)}")
  return common.save_png(figure, output)


def event_files(workdir) -> dict[str, list[epath.Path]]:
  """{directory relative to ``workdir`` ('' for itself): its event files in name order}.

  Name order is time order (the names start with the time of writing), the order TensorBoard
  reads a directory's files in.
  """
  workdir = epath.Path(workdir)
  if not workdir.is_dir():
    raise FileNotFoundError(f"--workdir={workdir}: no such directory")
  found = {}
  for relative in logging_utils.files_under(workdir):
    directory, _, name = relative.rpartition("/")
    if name.startswith(EVENT_FILE_PREFIX):
      found.setdefault(directory, []).append(workdir / relative)
  if not found:
    raise FileNotFoundError(f"--workdir={workdir}: no TensorBoard event files "
                            f"({EVENT_FILE_PREFIX}*) in it or below it")
  return {directory: sorted(files) for directory, files in sorted(found.items())}


def records(path) -> Iterator[bytes]:
  """The records of a TFRecord file (an event file): each a length, its CRC, data, data's CRC.

  The length's CRC is checked, so a damaged length is not followed; the data's is not (a
  pure-Python CRC of logged images would take longer than the rest of the figure), and damaged
  data fails to parse as an Event (``read_scalars``). A record cut short ends the file, as
  TensorBoard reads a file still being written.
  """
  with epath.Path(path).open("rb") as stream:
    while len(header := stream.read(12)) == 12:
      length, length_crc = struct.unpack("<QI", header)
      if length_crc != _masked_crc32c(header[:8]):
        logging.warning("%s: a damaged record header; the records after it are not read", path)
        return
      data = stream.read(length + 4)
      if len(data) < length + 4:
        return
      yield data[:length]


def read_scalars(files) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{tag: (steps int64 [N], values float64 [N])} of every scalar in one directory's files."""
  extras.require("tensorboard", "figures")
  # pylint: disable=g-import-not-at-top
  from google.protobuf import message
  from tensorboard.compat.proto import event_pb2
  from tensorboard.util import tensor_util
  # pylint: enable=g-import-not-at-top
  scalars, tensors = {}, {}
  for path in files:
    for record in records(path):
      try:
        event = event_pb2.Event.FromString(record)
      except message.DecodeError:
        logging.warning("%s: a damaged record; the records after it are not read", path)
        break
      for value in event.summary.value:
        if value.HasField("simple_value"):
          scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
        elif value.HasField("tensor"):
          tensors.setdefault(value.tag, []).append(
              (event.step, tensor_util.make_ndarray(value.tensor)))
  series = {tag: ([s for s, _ in points], [v for _, v in points])
            for tag, points in scalars.items()}
  for tag, points in tensors.items():  # TF2 scalars; images and text are tensors too.
    if all(np.size(v) == 1 and np.issubdtype(np.asarray(v).dtype, np.number) for _, v in points):
      series[tag] = ([s for s, _ in points], [float(np.asarray(v).reshape(())) for _, v in points])
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
  workdir = epath.Path(workdir)
  directories = event_files(workdir)
  curves, seen = {}, set()
  for directory, files in directories.items():
    place = directory or common.workdir_name(workdir)
    for tag, series in read_scalars(files).items():
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


def _crc32c_table() -> list[int]:
  table = []
  for byte in range(256):
    crc = byte
    for _ in range(8):
      crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli, reflected.
    table.append(crc)
  return table


_CRC32C_TABLE = _crc32c_table()


def _masked_crc32c(data: bytes) -> int:
  """TFRecord's checksum: CRC-32C, rotated right by 15 bits plus a constant."""
  crc = 0xFFFFFFFF
  for byte in data:
    crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  crc ^= 0xFFFFFFFF
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
