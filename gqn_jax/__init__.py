"""gqn_jax: the Generative Query Network in JAX and Flax."""

from gqn_jax import xla_flags as _xla_flags

_xla_flags.keep_remat_barriers()  # before JAX starts a backend; see gqn_jax/xla_flags.py.
