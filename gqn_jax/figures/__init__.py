"""The paper's figures from a trained run, one module each (``python -m gqn_jax.render``).

Each module's ``make(request)`` reads what it needs (checkpoint, held-out scenes, event files),
draws, and writes the file named by ``request.output``.
"""

FIGURES = ("novel_views", "uncertainty", "flyaround", "scene_algebra", "representation_space",
           "training_curves", "self_correction")
NEEDS_CHECKPOINT = frozenset(FIGURES) - {"training_curves"}


def get(name: str):
  """The module that makes figure ``name``; a ValueError lists the figures there are."""
  if name not in FIGURES:
    raise ValueError(f"unknown figure {name!r}; one of: {', '.join(FIGURES)}")
  import importlib  # pylint: disable=g-import-not-at-top
  return importlib.import_module(f"gqn_jax.figures.{name}")
