"""gqn_jax: the Generative Query Network in JAX and Flax."""
