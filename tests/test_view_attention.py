"""model.view_attention: r keeps every view, and each query weights them by a softmax over a
learnt match of poses. Its laws: the weights are a distribution over the real views, padded
views and their order do not matter, the views' sum is still the paper's r, and the model's
paths (training, represent then render, a stream of views, the Python API) agree."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gqn_jax import config as config_lib
from gqn_jax import model as model_lib
from gqn_jax import pretrained
from gqn_jax.representation import Representation, ViewAttention, pack_views, unpack_views
from gqn_jax.representation import fold_pixels, view_sum

SIZE, R, GRID = 16, 16, 4


def _attention(key, batch=2, views=4, cells=False):
  """An attention with random weights (biases too, which init leaves at 0), small enough that the
  softmax is not saturated."""
  packed = pack_views(jnp.zeros((batch, views, GRID, GRID, R)), jnp.zeros((batch, views, 7)),
                      jnp.ones((batch, views), bool))
  net = ViewAttention(cells=cells)
  params = net.init(key, packed, jnp.zeros((batch, 7)))
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(key, len(leaves))
  params = jax.tree.unflatten(tree, [0.2 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])
  return net, params


def _weights(net, params, poses, mask, query):
  """The attention's weights [B, M], read out by giving view m the encoding e_m everywhere."""
  batch, views = mask.shape
  one_hot = jnp.broadcast_to(jnp.eye(views)[None, :, None, None, :],
                             (batch, views, GRID, GRID, views))
  r = net.apply(params, pack_views(one_hot, poses, mask), query)
  np.testing.assert_allclose(r, jnp.broadcast_to(r[:, :1, :1], r.shape), atol=1e-6)
  return r[:, 0, 0]


def test_weights_are_a_distribution_over_the_real_views_and_follow_the_query(key):
  k = jax.random.split(key, 4)
  net, params = _attention(k[0])
  poses, query = jax.random.normal(k[1], (2, 4, 7)), jax.random.normal(k[2], (2, 7))
  mask = jnp.array([[True, True, True, False], [True, True, False, False]])
  weights = _weights(net, params, poses, mask, query)
  assert bool(jnp.all(weights >= 0))
  np.testing.assert_allclose(jnp.sum(weights, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(weights[~mask], 0.0)
  other = _weights(net, params, poses, mask, jax.random.normal(k[3], (2, 7)))
  assert float(jnp.max(jnp.abs(other - weights))) > 1e-3  # another query, other weights


def test_views_with_the_same_pose_are_averaged(key):
  """Equal poses give equal logits, so the softmax weighs them 1/M each: r is their mean."""
  k = jax.random.split(key, 4)
  net, params = _attention(k[0])
  encoded = jax.random.normal(k[1], (2, 3, GRID, GRID, R))
  poses = jnp.broadcast_to(jax.random.normal(k[2], (2, 1, 7)), (2, 3, 7))
  r = net.apply(params, pack_views(encoded, poses, jnp.ones((2, 3), bool)),
                jax.random.normal(k[3], (2, 7)))
  np.testing.assert_allclose(r, jnp.mean(encoded, axis=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cells", [False, True], ids=["views", "cells"])
def test_padded_views_and_view_order_do_not_matter(cells, key):
  k = jax.random.split(key, 5)
  net, params = _attention(k[0], cells=cells)
  encoded = jax.random.normal(k[1], (2, 4, GRID, GRID, R))
  poses, query = jax.random.normal(k[2], (2, 4, 7)), jax.random.normal(k[3], (2, 7))
  mask = jnp.array([[True, True, False, False], [True, True, True, True]])
  junk = encoded.at[0, 2:].set(jnp.nan)  # a padded view's junk must not reach r at all.
  r = net.apply(params, pack_views(junk, poses, mask), query)
  real = net.apply(params, pack_views(encoded[:1, :2], poses[:1, :2], mask[:1, :2]), query[:1])
  np.testing.assert_allclose(r[:1], real, rtol=1e-5, atol=1e-5)
  order = jnp.array([3, 1, 0, 2])
  shuffled = net.apply(params, pack_views(encoded[:, order], poses[:, order], mask[:, order]),
                       query)
  np.testing.assert_allclose(shuffled[1], r[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cells", [False, True], ids=["views", "cells"])
def test_one_view_is_its_own_r_and_no_view_is_zero_with_finite_gradients(cells, key):
  """With cells, one view's r is its encoding plus the cell term; that term is checked by
  test_cell_attention_over_equal_values_returns_their_projection."""
  k = jax.random.split(key, 4)
  net, params = _attention(k[0], cells=cells)
  encoded = jax.random.normal(k[1], (2, 3, GRID, GRID, R))
  poses, query = jax.random.normal(k[2], (2, 3, 7)), jax.random.normal(k[3], (2, 7))
  mask = jnp.array([[True, False, False], [False, False, False]])
  r = net.apply(params, pack_views(encoded, poses, mask), query)
  if not cells:
    np.testing.assert_allclose(r[0], encoded[0, 0], rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(r[1], 0.0)
  grads = jax.grad(lambda p: jnp.sum(net.apply(p, pack_views(encoded, poses, mask), query)))(
      params)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_cell_attention_over_equal_values_returns_their_projection(key):
  """Every cell of every view holding one encoding e: whatever the cell weights, their mean of
  the values is cell_value(e), so r = e + cell_value(e) at every query cell. Another encoding at
  one cell changes r at other query cells too: the cell term reaches across the grid."""
  k = jax.random.split(key, 5)
  net, params = _attention(k[0], cells=True)
  e = jax.random.normal(k[1], (2, 1, 1, 1, R))
  encoded = jnp.broadcast_to(e, (2, 3, GRID, GRID, R))
  poses, query = jax.random.normal(k[2], (2, 3, 7)), jax.random.normal(k[3], (2, 7))
  mask = jnp.ones((2, 3), bool)
  r = net.apply(params, pack_views(encoded, poses, mask), query)
  value = params["params"]["cell_value"]
  expected = e[:, 0] + e[:, 0] @ value["kernel"] + value["bias"]
  np.testing.assert_allclose(r, jnp.broadcast_to(expected, r.shape), rtol=1e-5, atol=1e-5)
  changed = encoded.at[:, 1, 0, 0].set(jax.random.normal(k[4], (2, R)))
  moved = net.apply(params, pack_views(changed, poses, mask), query)
  assert float(jnp.min(jnp.max(jnp.abs(moved - r)[:, 1:, 1:], axis=-1))) > 1e-4


def test_fold_pixels_puts_each_block_on_its_cell(key):
  images = jax.random.uniform(key, (2, 8, 8, 3))
  folded = fold_pixels(images, 2)
  assert folded.shape == (2, 2, 2, 48)
  for i in range(2):
    for j in range(2):
      np.testing.assert_array_equal(folded[:, i, j].reshape(2, 4, 4, 3),
                                    images[:, 4 * i:4 * i + 4, 4 * j:4 * j + 4])


def test_r_pixels_appends_each_views_folded_pixels(key):
  """r_pixels adds channels, not parameters: the encodings are the plain tower's, followed by
  the view's pixels on r's grid, and padded views' pixels are zeroed like their encodings."""
  k = jax.random.split(key, 3)
  images = jax.random.uniform(k[0], (2, 3, SIZE, SIZE, 3))
  poses = jax.random.normal(k[1], (2, 3, 7))
  mask = jnp.array([[True, True, False], [True, False, False]])
  plain = Representation("tower", R, keep_views=True)
  params = plain.init(k[2], images, poses)
  with_pixels = Representation("tower", R, keep_views=True, pixels=True)
  assert jax.tree.structure(with_pixels.init(k[2], images, poses)) == jax.tree.structure(params)
  encoded, _, _ = unpack_views(with_pixels.apply(params, images, poses, mask))
  reference, _, _ = unpack_views(plain.apply(params, images, poses, mask))
  np.testing.assert_allclose(encoded[..., :R], reference, rtol=1e-6)
  folded = fold_pixels(images.reshape(6, SIZE, SIZE, 3), GRID).reshape(2, 3, GRID, GRID, 48)
  np.testing.assert_allclose(encoded[..., R:],
                             jnp.where(mask[:, :, None, None, None], folded, 0.0), rtol=1e-6)


@pytest.mark.parametrize("architecture", ["tower", "pool"])
def test_kept_views_sum_to_the_papers_r(architecture, key):
  """keep_views changes what Representation returns, not its parameters: view_sum of the
  packed views is the plain sum, and unpack_views gives back the poses and mask."""
  k = jax.random.split(key, 3)
  images = jax.random.uniform(k[0], (2, 3, SIZE, SIZE, 3))
  poses = jax.random.normal(k[1], (2, 3, 7))
  mask = jnp.array([[True, True, False], [True, False, False]])
  plain = Representation(architecture, R)
  params = plain.init(k[2], images, poses)
  packed = Representation(architecture, R, keep_views=True).apply(params, images, poses, mask)
  np.testing.assert_allclose(view_sum(packed), plain.apply(params, images, poses, mask),
                             rtol=1e-5, atol=1e-5)
  _, got_poses, got_mask = unpack_views(packed)
  np.testing.assert_array_equal(got_poses, poses)
  np.testing.assert_array_equal(got_mask, mask)


def _model_config(**levers):
  return config_lib.model_config(dict(image_size=SIZE, representation="tower", r_channels=R,
                                      steps=2, hidden_channels=8, canvas_channels=8,
                                      latent_channels=2, view_attention=True, **levers))


@pytest.mark.parametrize("levers", [{}, {"attention_over": "cells", "r_pixels": True}],
                         ids=["views", "cells-pixels"])
def test_model_paths_agree(levers, key):
  """generate == render(represent); a stream of views == represent of all of them; the
  Python API's predict == its render from its represent, for one scene and a batch."""
  cfg = _model_config(**levers)
  channels = R + 48 * cfg.r_pixels
  k = jax.random.split(key, 5)
  batch = model_lib.dummy_batch(cfg, 2, 3)
  gqn = model_lib.GQN(cfg)
  params = gqn.init({"params": k[0], "sample": k[1]}, batch["context_images"],
                    batch["context_poses"], batch["query_pose"], batch["query_image"],
                    1.0)["params"]
  images = jax.random.uniform(k[2], (2, 3, SIZE, SIZE, 3))
  poses = jax.random.normal(k[3], (2, 3, 7))
  query = jax.random.normal(k[4], (2, 7))
  inference = model_lib.Inference(cfg, params)
  noise = inference.noise(key, 2)
  r = inference.represent(images, poses)
  assert r.shape == (2, 3, GRID, GRID, channels + 8)
  generated = gqn.apply({"params": params}, images, poses, query, None, noise,
                        method=model_lib.GQN.generate)
  np.testing.assert_allclose(inference.render(r, query, noise), generated, rtol=1e-5, atol=1e-5)

  stream = inference.stream(2)
  for view in range(3):
    stream.observe(images[:, view], poses[:, view])
  np.testing.assert_allclose(stream.r, r, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(inference.pooled(r), jnp.sum(r[..., :channels], axis=1), rtol=1e-6)

  model = pretrained.Pretrained(path=None, step=0, config=cfg, params=params)
  rng = np.random.default_rng(0)
  frames = rng.integers(0, 256, (2, 3, SIZE, SIZE, 3), dtype=np.uint8)
  cameras = rng.uniform(-2, 2, (2, 3, 5)).astype(np.float32)
  queries = rng.uniform(-2, 2, (2, 2, 5)).astype(np.float32)
  both = model.predict(frames, cameras, queries, key, samples=2)
  assert both.shape == (2, 2, 2, SIZE, SIZE, 3)
  single = model.render(model.represent(frames[1], cameras[1]), queries[1], key, samples=2)
  assert single.shape == (2, 2, SIZE, SIZE, 3)
  scene = model.stream()
  for view in range(3):
    scene.observe(frames[1, view], cameras[1, view])
  np.testing.assert_allclose(scene.r, model.represent(frames[1], cameras[1]), rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(scene.predict(queries[1], key, samples=2), single, rtol=1e-5,
                             atol=1e-5)
