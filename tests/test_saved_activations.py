"""The activation-memory counters of experiments/saved_activations.py, and what they show."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from conftest import tiny_model_config  # noqa: E402
from experiments import saved_activations as sa  # noqa: E402
from gqn_jax import layers  # noqa: E402
from gqn_jax import train_step as ts  # noqa: E402
from gqn_jax.model import GQN, dummy_batch, latent_noise  # noqa: E402


def test_jax_counts_a_residual_of_known_size_and_not_the_arguments():
  x = jnp.ones((3, 7), jnp.float32)
  # d sin(x) = cos(x): one residual the size of x. x itself is an argument: not counted.
  assert sa.jax_saved_bytes(lambda x: jnp.sum(jnp.sin(x)), x) == x.nbytes
  # A checkpointed function keeps only its arguments and recomputes the rest.
  assert sa.jax_saved_bytes(jax.checkpoint(lambda x: jnp.sum(jnp.sin(x))), x) == 0
  # Shapes are enough: nothing runs.
  assert sa.jax_saved_bytes(lambda x: jnp.sum(jnp.sin(x)),
                            jax.ShapeDtypeStruct((3, 7), jnp.float32)) == x.nbytes


def test_torch_counts_a_saved_activation_once_and_not_parameters_or_inputs():
  torch.manual_seed(0)
  x = torch.randn(5, 4)
  w1 = torch.nn.Parameter(torch.randn(4, 6))
  w2 = torch.nn.Parameter(torch.randn(6, 2))

  def forward():
    hidden = torch.tanh(x @ w1)  # tanh saves its output; the second matmul saves it too.
    return (hidden @ w2).sum()

  saved, loss = sa.torch_saved_bytes(forward, exclude=[x, w1, w2])
  assert saved == 5 * 6 * 4  # the hidden activation, once
  loss.backward()  # the saved tensors were handed back intact
  expected = x.T @ ((1 - torch.tanh(x @ w1) ** 2) * w2.sum(1))
  np.testing.assert_allclose(w1.grad.numpy(), expected.detach().numpy(), rtol=1e-5)


def test_the_stacked_patch_conv_keeps_neither_patches_nor_merged_kernel_without_remat():
  cfg = tiny_model_config(representation="tower", remat=False)
  model = GQN(cfg)
  params = jax.eval_shape(lambda: ts.init_params(model, jax.random.key(0)))
  data = jax.eval_shape(lambda: dummy_batch(cfg, 2, 3))
  noise = jax.eval_shape(lambda: latent_noise(jax.random.key(1), cfg, 2))

  def loss(params, data, noise):
    return jnp.mean(model.apply({"params": params}, data, 1.0, noise,
                                method=GQN.elbo_terms).loss)

  shapes = [v.shape for v in sa.jax_residuals(loss, params, data, noise)]
  k, r = cfg.kernel_size, cfg.r_channels
  merged_kernel = (k * k * r, cfg.steps * 4 * cfg.hidden_channels)
  assert merged_kernel not in shapes
  assert not [s for s in shapes if s[-1:] == (k * k * r,)]  # r's patch matrix
  # ... while the unwrapped conv does keep both, so the check above can see them.
  x = jax.ShapeDtypeStruct((2, cfg.grid_size, cfg.grid_size, r), jnp.float32)
  kernels = params["generator"]["generation_core"]["r"]
  kept = [v.shape for v in sa.jax_residuals(
      lambda x, w: jnp.sum(layers.conv2d_stacked(x, w, layers.KernelChoice("im2col", False))),
      x, kernels)]
  assert merged_kernel in kept and [s for s in kept if s[-1:] == (k * k * r,)]


def test_remat_saves_under_a_third_of_what_the_baseline_saves():
  """The issue's memory target, on activations, at a reduced paper model (both sides)."""
  small = dict(steps=4, image_size=32, r_channels=64, hidden_channels=32, canvas_channels=32)
  records = sa.measure([2], 3, cases=[("plain", "gqn_jax", small),
                                      ("remat", "gqn_jax", small | {"remat": True}),
                                      ("plain", "pytorch", small)])
  mib = {r["case"] + "/" + r["impl"]: r["saved_activations_mib"] for r in records}
  assert mib["remat/gqn_jax"] < mib["plain/gqn_jax"] / 2
  assert mib["remat/gqn_jax"] < mib["plain/pytorch"] / 3
  table = sa.markdown_table(records)
  assert "| plain | pytorch | 2 |" in table and "| 1.00 |" in table


@pytest.mark.parametrize("impl", ["gqn_jax", "pytorch"])
def test_saved_activations_grow_in_proportion_to_the_batch(impl):
  """Activations are per scene: twice the batch saves twice the bytes, up to what is kept per
  step whatever the batch (e.g. kernels in the layout the backward pass reads)."""
  small = dict(steps=2, image_size=32, r_channels=32, hidden_channels=16, canvas_channels=16)
  one, two, four = (sa.MEASURE[impl](small, batch, 2) for batch in (1, 2, 4))
  per_scene = two - one
  assert per_scene > 0
  assert four - two == pytest.approx(2 * per_scene, rel=1e-6)
