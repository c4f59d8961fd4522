"""Runs, benchmarks and the PyTorch baseline around gqn_jax; run its scripts from the
repository root as modules, e.g. ``python -m experiments.benchmark --suite=reference``."""
