"""gqn_jax: the Generative Query Network in JAX and Flax."""


def load(path, step=None):
  """A trained model for use from Python (gqn_jax/pretrained.py): ``gqn_jax.load(run_dir)``."""
  from gqn_jax import pretrained  # pylint: disable=g-import-not-at-top  (JAX only when used)
  return pretrained.load(path, step)
