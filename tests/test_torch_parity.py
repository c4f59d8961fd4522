"""The PyTorch baseline and gqn_jax compute the same model.

The baseline (experiments/baselines/torch_gqn) is the spec's literal reading: a Python loop, a
conv over each core's concatenated inputs, a real canvas. gqn_jax reorganises the same maths
(split, hoisted and composed convolutions, no canvas). With the same weights (converted), inputs
and latent noise, both must give the same per-scene NLL, KL per step and mean image, the same
prior-mode image, and the same gradient of the mean loss for every parameter.

Each option is run once (``_run`` is cached) and checked by the tests below it. The JAX side is
compiled with most XLA optimisations off, which keeps the suite well under a minute on 2 cores.
"""

import functools

import jax
import numpy as np
import pytest
import torch


from experiments.baselines.torch_gqn import GQN as TorchGQN  # noqa: E402
from experiments.baselines.torch_gqn import flax_to_torch, torch_to_flax  # noqa: E402
from gqn_jax.config import model_config  # noqa: E402
from gqn_jax.model import GQN as JaxGQN  # noqa: E402

OUTPUT_TOLERANCE = 1e-4    # max |torch - jax| / max |jax|, per output.
GRADIENT_TOLERANCE = 1e-3  # |g_torch - g_jax| / |g_jax| (Euclidean norms), per parameter.
SIGMA = 0.9
BATCH, VIEWS = 2, 3
MASK = np.array([[True, True, False], [True, False, False]])  # scene 2 has a single view.

# Every representation with unshared and shared cores, on XLA's own convolution (the fastest to
# compile), and the default backend ('auto': custom gradients on the CPU) on the paper's default
# options; view attention with a spatial and a 1x1 r, and with the reference config's cell
# attention and pixels in r. Whether the backends agree with each other is gqn_jax's own test;
# here one is enough per option.
OPTIONS = ([(rep, shared, "xla", False) for rep in ("pyramid", "tower", "pool")
            for shared in (False, True)]
           + [("tower", False, "auto", False), ("tower", False, "xla", True),
              ("pool", True, "xla", True), ("tower", False, "xla", "cells-pixels")])
IDS = [f"{rep}-{'shared' if shared else 'unshared'}-{backend}"
       f"{'' if not attention else '-attention' if attention is True else '-' + attention}"
       for rep, shared, backend, attention in OPTIONS]
LEVERS = {False: {}, True: {"view_attention": True},
          "cells-pixels": {"view_attention": True, "attention_over": "cells", "r_pixels": True}}


def tiny_config(representation, share_cores, conv_backend, view_attention=False):
  # Distinct channel counts, so that a transposed axis in the conversion cannot go unnoticed.
  return model_config(dict(image_size=16, representation=representation, r_channels=16, steps=3,
                           hidden_channels=8, canvas_channels=6, latent_channels=2,
                           share_cores=share_cores, conv_backend=conv_backend,
                           **LEVERS[view_attention]))


def make_inputs(config):
  """Channels-last NumPy inputs, as gqn_jax takes them."""
  rng = np.random.default_rng(0)
  size, grid = config.image_size, config.grid_size
  context_images = rng.uniform(size=(BATCH, VIEWS, size, size, 3)).astype(np.float32)
  context_images[~MASK] = 100.0  # masked views hold junk that must not reach r.
  return dict(
      context_images=context_images,
      context_poses=rng.normal(size=(BATCH, VIEWS, 7)).astype(np.float32),
      query_pose=rng.normal(size=(BATCH, 7)).astype(np.float32),
      query_image=rng.uniform(size=(BATCH, size, size, 3)).astype(np.float32),
      context_mask=MASK,
      noise=rng.normal(size=(BATCH, config.steps, grid, grid,
                             config.latent_channels)).astype(np.float32))


def to_torch(inputs):
  """Channels-last NumPy -> channels-first tensors; noise [B, L, G, G, Z] -> [B, L, Z, G, G]."""
  t = {k: torch.from_numpy(np.array(v)) for k, v in inputs.items()}
  t["context_images"] = t["context_images"].permute(0, 1, 4, 2, 3)
  t["query_image"] = t["query_image"].permute(0, 3, 1, 2)
  t["noise"] = t["noise"].permute(0, 1, 4, 2, 3)
  return t


def run_torch(config, params, inputs):
  torch.manual_seed(0)
  model = TorchGQN(config)
  flax_to_torch(params, model)
  t = to_torch(inputs)
  terms = model(t["context_images"], t["context_poses"], t["query_pose"], t["query_image"],
                SIGMA, context_mask=t["context_mask"], noise=t["noise"])
  terms.loss.mean().backward()
  gradients = torch_to_flax({name: p.grad for name, p in model.named_parameters()}, config)
  with torch.no_grad():
    generated = model.generate(t["context_images"], t["context_poses"], t["query_pose"],
                               context_mask=t["context_mask"], noise=t["noise"])
  return dict(nll=terms.nll.detach().numpy(), kl_per_step=terms.kl_per_step.detach().numpy(),
              mean=terms.mean.detach().permute(0, 2, 3, 1).numpy(),
              generated=generated.permute(0, 2, 3, 1).numpy(), gradients=gradients)


def run_jax(config, params, inputs):
  model = JaxGQN(config)
  x = inputs

  @jax.jit
  def outputs(params):
    def loss(params):
      terms = model.apply({"params": params}, x["context_images"], x["context_poses"],
                          x["query_pose"], x["query_image"], SIGMA, x["context_mask"], x["noise"])
      return terms.loss.mean(), terms
    (_, terms), gradients = jax.value_and_grad(loss, has_aux=True)(params)
    generated = model.apply({"params": params}, x["context_images"], x["context_poses"],
                            x["query_pose"], x["context_mask"], x["noise"],
                            method=JaxGQN.generate)
    return dict(nll=terms.nll, kl_per_step=terms.kl_per_step, mean=terms.mean,
                generated=generated, gradients=gradients)

  return jax.tree.map(np.asarray, outputs(params))


@functools.cache
def _run(representation, share_cores, conv_backend, view_attention):
  config = tiny_config(representation, share_cores, conv_backend, view_attention)
  # Weights from PyTorch's default init (its biases are non-zero, unlike gqn_jax's, so the bias
  # conversion is exercised too), moved into gqn_jax's layout.
  torch.manual_seed(1)
  params = torch_to_flax(TorchGQN(config).state_dict(), config)
  inputs = make_inputs(config)
  previous = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  try:
    jax_out = run_jax(config, params, inputs)
  finally:
    jax.config.update("jax_disable_most_optimizations", previous)
  return run_torch(config, params, inputs), jax_out


def relative_error(actual, expected):
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  return np.max(np.abs(actual - expected)) / np.max(np.abs(expected))


@pytest.mark.parametrize("option", OPTIONS, ids=IDS)
@pytest.mark.parametrize("output", ["nll", "kl_per_step", "mean"])
def test_training_pass_matches(option, output):
  """Posterior mode: the same NLL [B], KL per step [B, L] and mean image [B, H, W, 3]."""
  torch_out, jax_out = _run(*option)
  assert torch_out[output].shape == jax_out[output].shape
  assert relative_error(torch_out[output], jax_out[output]) < OUTPUT_TOLERANCE


@pytest.mark.parametrize("option", OPTIONS, ids=IDS)
def test_generation_matches(option):
  """Prior mode (no inference core): the same image from the same noise."""
  torch_out, jax_out = _run(*option)
  assert relative_error(torch_out["generated"], jax_out["generated"]) < OUTPUT_TOLERANCE


@pytest.mark.parametrize("option", OPTIONS, ids=IDS)
def test_gradients_match(option):
  """d mean(nll + kl) / d theta agrees for every parameter, after conversion to gqn_jax's tree."""
  torch_out, jax_out = _run(*option)
  torch_grads, jax_grads = torch_out["gradients"], jax_out["gradients"]
  assert (jax.tree.structure(torch_grads) == jax.tree.structure(jax_grads))
  pairs = {jax.tree_util.keystr(path): (t, j)
           for (path, t), j in zip(jax.tree_util.tree_leaves_with_path(torch_grads),
                                   jax.tree.leaves(jax_grads))}
  # A parameter that cannot change the loss has a zero gradient, up to rounding, in both: the
  # attention's key bias shifts every view's logit by the same amount, which the softmax undoes.
  # Such leaves are compared against the largest gradient's scale instead of their own.
  scale = max(np.linalg.norm(j) for _, j in pairs.values())
  errors = {name: np.linalg.norm(t - j) / max(np.linalg.norm(j), 1e-6 * scale)
            for name, (t, j) in pairs.items()}
  assert all(np.isfinite(e) for e in errors.values()), errors
  worst = max(errors, key=errors.get)
  assert errors[worst] < GRADIENT_TOLERANCE, (worst, errors[worst])


def test_masked_views_do_not_count():
  """Sanity for the inputs above: the junk in masked views would change the loss if it leaked."""
  torch_out, _ = _run("tower", False, "xla", False)
  config = tiny_config("tower", False, "xla")
  inputs = make_inputs(config)
  inputs["context_images"][~MASK] = 0.0
  torch.manual_seed(1)
  params = torch_to_flax(TorchGQN(config).state_dict(), config)
  np.testing.assert_allclose(run_torch(config, params, inputs)["nll"], torch_out["nll"],
                             rtol=1e-6)
