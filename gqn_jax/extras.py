"""Optional dependencies: a missing one fails with one line naming the extra to install.

The core (model, train step, checkpoints, the training loop) needs only setup.cfg's
``install_requires``. Scene generation, the TFDS conversion, figures, TensorBoard event files and
the PyTorch baseline need extras; their import sites go through ``require`` (or ``check``, where
the import itself must happen elsewhere), e.g.::

  tfds = extras.require("tensorflow_datasets", "data")

raises ``MissingExtraError: reading the prepared TFDS dataset needs tensorflow_datasets, which is
not installed: pip install 'gqn_jax[data]'`` when it is missing. The console scripts print that
line alone (gqn_jax/cli.py), not a traceback.
"""

import importlib
import importlib.util
from types import ModuleType

# extra -> what it is for, in the error message.
PURPOSES = {
    "scenes": "scene generation",
    "data": "the TFDS datasets and TFRecord files",
    "tensorboard": "TensorBoard event files",
    "figures": "figures",
    "baseline": "the PyTorch baseline",
    "test": "the tests",
}


class MissingExtraError(ImportError):
  """An optional dependency is not installed; the message names the extra that provides it."""


def install_line(extra: str) -> str:
  return f"pip install 'gqn_jax[{extra}]'"


def _error(module: str, extra: str, purpose: str | None) -> MissingExtraError:
  purpose = purpose or PURPOSES.get(extra, f"the {extra} extra")
  return MissingExtraError(f"{purpose} needs {module.split('.')[0]}, which is not installed: "
                           f"{install_line(extra)}")


def _is_missing(module: str, error: ImportError) -> bool:
  """Whether ``error`` says the distribution of ``module`` is absent (not broken, not older)."""
  return isinstance(error, ModuleNotFoundError) and error.name == module.split(".")[0]


def require(module: str, extra: str, purpose: str | None = None) -> ModuleType:
  """Imports ``module``; if it is not installed, raises MissingExtraError naming ``extra``.

  An ImportError from inside an installed package (a broken install, a missing shared library)
  propagates unchanged: reinstalling the extra would not fix it.
  """
  try:
    return importlib.import_module(module)
  except ImportError as error:
    if not _is_missing(module, error):
      raise
    raise _error(module, extra, purpose) from None


def check(module: str, extra: str, purpose: str | None = None) -> None:
  """Like ``require`` without importing ``module`` (for modules another process imports)."""
  try:
    found = importlib.util.find_spec(module.split(".")[0]) is not None
  except ImportError:
    found = False
  if not found:
    raise _error(module, extra, purpose)


def check_cloud_storage(values) -> None:
  """Raises MissingExtraError when a value is a gs:// path but what reads one is missing:
  etils.epath reads it through gcsfs (through TensorFlow's gfile instead, where TensorFlow is
  installed) and orbax asks the bucket about its layout through google-cloud-storage."""
  url = next((v for v in values if isinstance(v, str) and v.startswith("gs://")), None)
  if url is None:
    return
  # Not an extra of setup.cfg: the lock would have to pin them, and no test needs a bucket.
  needed = {"google.cloud.storage": "google-cloud-storage"}
  if not available("tensorflow"):
    needed["gcsfs"] = "gcsfs"
  for module, distribution in needed.items():
    if not available(module):
      raise MissingExtraError(f"the gs:// path {url} needs {distribution}, which is not "
                              f"installed: pip install gcsfs google-cloud-storage")


def available(module: str) -> bool:
  """Whether ``module`` (a dotted name too) can be found, without importing it."""
  try:
    return importlib.util.find_spec(module) is not None
  except ImportError:  # a parent package is missing.
    return False
