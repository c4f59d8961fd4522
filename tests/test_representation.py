"""r is a sum over context views: order-free, additive, and blind to masked views."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gqn_jax.representation import Representation

SIZE, R = 16, 16


def _setup(architecture, key, views=4, size=SIZE):
  k = jax.random.split(key, 3)
  images = jax.random.uniform(k[0], (2, views, size, size, 3))
  poses = jax.random.normal(k[1], (2, views, 7))
  net = Representation(architecture, R)
  params = net.init(k[2], images, poses)
  return net, params, images, poses


@pytest.mark.parametrize("architecture,grid", [("pyramid", 1), ("tower", SIZE // 4),
                                               ("pool", 1)])
def test_shape(architecture, grid, key):
  net, params, images, poses = _setup(architecture, key)
  assert net.apply(params, images, poses).shape == (2, grid, grid, R)


@pytest.mark.parametrize("architecture", ["pyramid", "tower", "pool"])
def test_invariant_to_view_order(architecture, key):
  net, params, images, poses = _setup(architecture, key)
  order = jnp.array([2, 0, 3, 1])
  np.testing.assert_allclose(net.apply(params, images, poses),
                             net.apply(params, images[:, order], poses[:, order]),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("architecture", ["pyramid", "tower", "pool"])
def test_equals_sum_of_single_view_encodings(architecture, key):
  net, params, images, poses = _setup(architecture, key)
  singles = [net.apply(params, images[:, k:k + 1], poses[:, k:k + 1]) for k in range(4)]
  np.testing.assert_allclose(net.apply(params, images, poses), sum(singles),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("architecture", ["pyramid", "tower"])
def test_masked_views_count_zero(architecture, key):
  """A batch padded with junk views and masked equals the batch of its real views."""
  net, params, images, poses = _setup(architecture, key)
  mask = jnp.array([[True, True, False, False], [True, False, False, False]])
  padded = net.apply(params, images, poses, mask)
  np.testing.assert_allclose(padded[0], net.apply(params, images[:1, :2], poses[:1, :2])[0],
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(padded[1], net.apply(params, images[1:, :1], poses[1:, :1])[0],
                             rtol=1e-5, atol=1e-5)


def test_pyramid_reaches_1x1_for_sizes_not_divisible_by_8(key):
  net, params, images, poses = _setup("pyramid", key, size=36)
  assert net.apply(params, images, poses).shape == (2, 1, 1, R)


def test_paper_pyramid_layer_shapes(key):
  """The spec's pyramid at 64 px: 2x2/2 convs to 32, 64, 128 channels, then 8x8/8 to 256."""
  net = Representation("pyramid", 256)
  shapes = jax.eval_shape(net.init, key, jnp.zeros((1, 1, 64, 64, 3)), jnp.zeros((1, 1, 7)))
  kernels = [shapes["params"]["pyramid"][f"Conv_{i}"]["kernel"].shape for i in range(4)]
  assert kernels == [(2, 2, 10, 32), (2, 2, 32, 64), (2, 2, 64, 128), (8, 8, 128, 256)]


def _equations(jaxpr):
  """Every equation of a jaxpr, nested jaxprs' included."""
  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      inner = getattr(value, "jaxpr", value)
      if hasattr(inner, "eqns"):
        yield from _equations(inner)


def _conv_input_dtypes(jaxpr):
  """The operand dtypes of every convolution and matmul (the CPU runs some convolutions as
  matmuls, layers.flax_conv) in a jaxpr, nested jaxprs included."""
  return [{str(v.aval.dtype) for v in eqn.invars} for eqn in _equations(jaxpr)
          if eqn.primitive.name in ("conv_general_dilated", "dot_general")]


@pytest.mark.parametrize("architecture", ["pyramid", "tower", "pool"])
def test_bfloat16_convolves_in_bfloat16_and_stays_close_to_float32(architecture, key):
  """The model's dtype is the representation's compute dtype too (PyTorch's autocast runs the
  baseline's representation convs in bfloat16); parameters and r stay float32."""
  net, params, images, poses = _setup(architecture, key)
  low = Representation(architecture, R, dtype=jnp.bfloat16)
  assert jax.tree.map(lambda x: x.shape, low.init(key, images, poses)) == jax.tree.map(
      lambda x: x.shape, params)  # same parameters: a checkpoint loads either way
  jaxpr = jax.make_jaxpr(lambda p: low.apply(p, images, poses))(params).jaxpr
  dtypes = _conv_input_dtypes(jaxpr)
  assert dtypes and all(d == {"bfloat16"} for d in dtypes)
  assert not [d for d in _conv_input_dtypes(
      jax.make_jaxpr(lambda p: net.apply(p, images, poses))(params).jaxpr) if d != {"float32"}]
  r32, r16 = net.apply(params, images, poses), low.apply(params, images, poses)
  assert r16.dtype == jnp.float32
  scale = float(jnp.max(jnp.abs(r32)))
  assert scale > 0
  np.testing.assert_allclose(r16, r32, atol=0.03 * scale)


@pytest.mark.parametrize("architecture", ["pyramid", "tower", "pool"])
def test_matmul_convolutions_compute_xla_convolutions(architecture, key):
  """The matmul forms of the convolutions (layers.flax_conv; every backend but 'xla' runs them,
  here the CPU's 'im2col') give XLA's convolutions' r and gradients, from the same parameters.
  36 px: the pyramid's last conv covers a 4x4 remainder of a 36 / 8 = 4.5 grid, so its block
  matmul must drop the partial block as the conv does."""
  images = jax.random.uniform(key, (2, 3, 36, 36, 3))
  poses = jax.random.normal(jax.random.fold_in(key, 1), (2, 3, 7))
  nets = {name: Representation(architecture, R, conv_backend=name) for name in ("xla", "im2col")}
  params = nets["xla"].init(jax.random.fold_in(key, 2), images, poses)

  def loss(net):
    return lambda p, x: jnp.sum(jnp.sin(net.apply(p, x, poses)))

  expected, ours = (jax.value_and_grad(loss(nets[name]), argnums=(0, 1))(params, images)
                    for name in ("xla", "im2col"))
  np.testing.assert_allclose(ours[0], expected[0], rtol=1e-4)
  for got, want in zip(jax.tree.leaves(ours[1]), jax.tree.leaves(expected[1])):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(want))))


def test_cpu_runs_the_towers_block_and_1x1_convolutions_as_matmuls(key):
  """On the CPU ('auto') the tower's three 2x2/2 convolutions and its 1x1 one are matmuls, whose
  gradients XLA's CPU backend runs fast; its four 3x3 convolutions stay XLA's ('xla': all 8)."""
  net, params, images, poses = _setup("tower", key)

  def conv_count(net):
    jaxpr = jax.make_jaxpr(lambda p: net.apply(p, images, poses))(params).jaxpr
    return sum(eqn.primitive.name == "conv_general_dilated" for eqn in _equations(jaxpr))

  assert conv_count(net) == 4
  assert conv_count(Representation("tower", R, conv_backend="xla")) == 8



@pytest.mark.parametrize("architecture", ["pyramid", "tower"])
def test_pose_rays_padded_views_keep_gradients_finite(architecture, key):
  """With pose rays, the padded views' all-zero poses (as the input pipeline pads them) have no
  viewing direction; their rays must stay finite, or a NaN masked out of r still poisons the
  parameters' gradients through the masked branch."""
  k = jax.random.split(key, 3)
  images = jax.random.uniform(k[0], (2, 3, SIZE, SIZE, 3))
  poses = jax.random.normal(k[1], (2, 3, 7)).at[:, 2].set(0.0)
  mask = jnp.array([[True, True, False], [True, False, False]])
  net = Representation(architecture, R, pose_rays=True)
  params = net.init(k[2], images, poses)
  grads = jax.grad(lambda p: jnp.sum(net.apply(p, images, poses, mask)))(params)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
  # The rays are inputs of the convolution where the pose joins: 7 pose + 6 ray channels more.
  plain = Representation(architecture, R).init(k[2], images, poses)
  extra = jax.tree.map(lambda a, b: a.size - b.size, params, plain)
  assert sum(jax.tree.leaves(extra)) > 0
