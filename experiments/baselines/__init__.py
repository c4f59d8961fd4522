"""Reimplementations of GQN in other frameworks, kept for comparison with gqn_jax."""
