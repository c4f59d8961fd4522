"""The scanned generator computes exactly the paper's step-by-step model."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_model_config
from gqn_jax.generator import Generator
import reference_generator


def _inputs(cfg, key, r_grid):
  """Random generator inputs; r_grid 1 (pyramid/pool r) or 'grid' (tower r)."""
  k = jax.random.split(key, 5)
  batch, grid = 2, cfg.grid_size
  r_grid = grid if r_grid == "grid" else r_grid
  r = jax.random.uniform(k[0], (batch, r_grid, r_grid, 16))
  pose = jax.random.normal(k[1], (batch, 7))
  target = jax.random.uniform(k[2], (batch, cfg.image_size, cfg.image_size, 3))
  noise = jax.random.normal(k[3], (batch, cfg.steps, grid, grid, cfg.latent_channels))
  params = Generator(cfg).init(k[4], r, pose, target, noise)["params"]
  # Non-zero biases everywhere, so that every bias path is exercised.
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(k[4], len(leaves))
  params = jax.tree.unflatten(
      treedef, [x + 0.1 * jax.random.normal(kk, x.shape) for x, kk in zip(leaves, keys)])
  return params, r, pose, target, noise


OPTIONS = [dict(share_cores=s, conv_backend=b) for s in (False, True)
           for b in ("xla", "explicit_vjp", "im2col")]
OPTIONS += [dict(scan_unroll=2), dict(remat=True), dict(share_cores=True, scan_unroll=3)]
# Wider than an image block's 48 channels: the query image's downsampling and conv composed.
OPTIONS += [dict(hidden_channels=56)]
# Each cell's viewing ray beside the broadcast pose (config.pose_rays), in either pose order.
OPTIONS += [dict(pose_rays=True), dict(pose_rays=True, pose_order="cos_sin", share_cores=True)]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in
                                                                       o.items()))
@pytest.mark.parametrize("r_grid", [1, "grid"], ids=["r1x1", "r_on_grid"])
@pytest.mark.parametrize("mode", ["posterior", "prior"])
def test_scan_equals_reference_unroll(options, r_grid, mode, key):
  cfg = tiny_model_config(**options)
  params, r, pose, target, noise = _inputs(cfg, key, r_grid)
  target = target if mode == "posterior" else None
  mean, kl = Generator(cfg).apply({"params": params}, r, pose, target, noise)
  ref_mean, ref_kl = reference_generator.generate(params, cfg, r, pose, target, noise)
  np.testing.assert_allclose(mean, ref_mean, rtol=1e-4, atol=1e-5)
  if mode == "posterior":
    assert kl.shape == (2, cfg.steps)
    np.testing.assert_allclose(kl, ref_kl, rtol=1e-4, atol=1e-4)
  else:
    assert kl is None


@pytest.mark.parametrize("options", [dict(share_cores=False), dict(share_cores=True),
                                     dict(conv_backend="im2col", remat=True),
                                     dict(hidden_channels=56)],
                         ids=["unshared", "shared", "im2col+remat", "composed_image_conv"])
def test_gradients_equal_reference_unroll(options, key):
  """The custom conv VJP and the scan's backward pass give the literal model's gradients."""
  cfg = tiny_model_config(**options)
  params, r, pose, target, noise = _inputs(cfg, key, "grid")

  def loss(fn):
    def f(params, r):
      mean, kl = fn(params, r)
      return jnp.sum(jnp.square(mean - target)) + jnp.sum(kl)
    return jax.grad(f, argnums=(0, 1))

  scanned = loss(lambda p, r: Generator(cfg).apply({"params": p}, r, pose, target, noise))(
      params, r)
  literal = loss(lambda p, r: reference_generator.generate(p, cfg, r, pose, target, noise))(
      params, r)
  for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(scanned)[0],
                          jax.tree.leaves(literal)):
    np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4 * float(jnp.max(jnp.abs(b))),
                               err_msg=jax.tree_util.keystr(path))


def test_noise_drawn_from_sample_stream_when_absent(key):
  cfg = tiny_model_config()
  params, r, pose, target, _ = _inputs(cfg, key, 1)
  gen = Generator(cfg)
  a = gen.apply({"params": params}, r, pose, None, rngs={"sample": jax.random.key(1)})[0]
  b = gen.apply({"params": params}, r, pose, None, rngs={"sample": jax.random.key(1)})[0]
  c = gen.apply({"params": params}, r, pose, None, rngs={"sample": jax.random.key(2)})[0]
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)


def test_any_image_size_multiple_of_4(key):
  cfg = dataclasses.replace(tiny_model_config(), image_size=20)  # not a multiple of 8
  params, r, pose, target, noise = _inputs(cfg, key, 1)
  mean, kl = Generator(cfg).apply({"params": params}, r, pose, target, noise)
  assert mean.shape == (2, 20, 20, 3) and kl.shape == (2, cfg.steps)


def test_bfloat16_compute_stays_close_to_float32(key):
  """bf16 has an 8-bit mantissa: values agree to ~1e-2 relative, through all L steps."""
  cfg = tiny_model_config()
  params, r, pose, target, noise = _inputs(cfg, key, "grid")
  full = Generator(cfg).apply({"params": params}, r, pose, target, noise)
  half = Generator(dataclasses.replace(cfg, dtype="bfloat16")).apply(
      {"params": params}, r, pose, target, noise)
  assert half[0].dtype == jnp.float32 and half[1].dtype == jnp.float32
  for a, b in zip(half, full):
    assert float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b))) < 3e-2


@pytest.mark.parametrize("options", [{}, dict(remat=True), dict(share_cores=True)],
                         ids=["plain", "remat", "shared"])
def test_bfloat16_gradients_stay_close_to_float32(options, key):
  """bfloat16's backward pass (on the CPU: cpu_kernels.bf16_matmul and the patch conv's custom VJPs
  inside the scan) points where float32's does: each parameter's gradient within a few per cent
  of float32's in norm."""
  cfg = tiny_model_config(**options)
  params, r, pose, target, noise = _inputs(cfg, key, "grid")

  def grads(dtype):
    def loss(params, r):
      mean, kl = Generator(dataclasses.replace(cfg, dtype=dtype)).apply(
          {"params": params}, r, pose, target, noise)
      return jnp.sum(jnp.square(mean - target)) + jnp.sum(kl)
    return jax.grad(loss, argnums=(0, 1))(params, r)

  half, full = grads("bfloat16"), grads("float32")
  for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(half)[0], jax.tree.leaves(full)):
    assert a.dtype == b.dtype == jnp.float32, jax.tree_util.keystr(path)
    error = float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))
    assert error < 5e-2, (jax.tree_util.keystr(path), error)
