"""Laws of the PyTorch baseline on its own: schedules, weight conversion, objective, masking,
the train step, and torch.compile. (Agreement with gqn_jax is tests/test_torch_parity.py.)"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch


from experiments.baselines.torch_gqn import GQN, flax_to_torch, torch_to_flax  # noqa: E402
from experiments.baselines.torch_gqn import make_train_step, objective, schedules  # noqa: E402
from gqn_jax.config import model_config  # noqa: E402
from gqn_jax.model import GQN as JaxGQN  # noqa: E402

OPTIONS = ([(rep, shared, False) for rep in ("pyramid", "tower", "pool")
            for shared in (False, True)] + [("tower", False, True)])
IDS = [f"{rep}-{'shared' if shared else 'unshared'}{'-attention' * attention}"
       for rep, shared, attention in OPTIONS]
BATCH, VIEWS = 2, 3


def tiny_config(representation="tower", share_cores=False, view_attention=False, steps=3):
  return model_config(dict(image_size=16, representation=representation, r_channels=16,
                           steps=steps, hidden_channels=8, canvas_channels=6, latent_channels=2,
                           share_cores=share_cores, view_attention=view_attention))


def make_batch(config, seed=0, with_noise=True):
  g = torch.Generator().manual_seed(seed)
  size, grid = config.image_size, config.grid_size
  batch = dict(
      context_images=torch.rand(BATCH, VIEWS, 3, size, size, generator=g),
      context_poses=torch.randn(BATCH, VIEWS, 7, generator=g),
      context_mask=torch.tensor([[True, True, False], [True, True, True]]),
      query_image=torch.rand(BATCH, 3, size, size, generator=g),
      query_pose=torch.randn(BATCH, 7, generator=g))
  if with_noise:
    batch["noise"] = torch.randn(BATCH, config.steps, config.latent_channels, grid, grid,
                                 generator=g)
  return batch


# ---------------------------------------------------------------------------------- schedules

STEPS = [0, 100_000, 200_000, 800_000, 1_600_000, 2_000_000]


@pytest.mark.parametrize("step, expected", list(zip(STEPS, [
    5e-4, 4.71875e-4, 4.4375e-4, 2.75e-4, 5e-5, 5e-5])))
def test_learning_rate_follows_paper(step, expected):
  """mu_s = max(mu_f + (mu_i - mu_f)(1 - s/1.6e6), mu_f), 5e-4 -> 5e-5 (values by hand)."""
  assert schedules.learning_rate(step) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("step, expected", list(zip(STEPS, [2.0, 1.35, 0.7, 0.7, 0.7, 0.7])))
def test_pixel_sigma_follows_paper(step, expected):
  """sigma_s = max(sigma_f + (sigma_i - sigma_f)(1 - s/2e5), sigma_f), 2.0 -> 0.7."""
  assert schedules.pixel_sigma(step) == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------------------ conversion

@pytest.mark.parametrize("option", OPTIONS, ids=IDS)
def test_torch_flax_torch_round_trip_is_exact(option):
  config = tiny_config(*option)
  torch.manual_seed(0)
  original = GQN(config).state_dict()
  restored = flax_to_torch(torch_to_flax(original, config), GQN(config))
  assert restored.keys() == original.keys()
  for name in original:
    assert torch.equal(restored[name], original[name]), name


@pytest.mark.parametrize("option", OPTIONS, ids=IDS)
def test_flax_torch_flax_round_trip_is_exact(option):
  """Starting from gqn_jax's own parameter tree: every leaf maps to PyTorch and back, bit for
  bit, and the tree torch_to_flax builds has exactly gqn_jax's structure and shapes."""
  config = tiny_config(*option)
  size = config.image_size
  shapes = jax.eval_shape(
      lambda: JaxGQN(config).init({"params": jax.random.key(0), "sample": jax.random.key(1)},
                                  jnp.zeros((1, 1, size, size, 3)), jnp.zeros((1, 1, 7)),
                                  jnp.zeros((1, 7)), jnp.zeros((1, size, size, 3)), 1.0))
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(np.float32), shapes)["params"]
  back = torch_to_flax(flax_to_torch(params, GQN(config)), config)
  assert jax.tree.structure(back) == jax.tree.structure(params)
  for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
    assert a.shape == b.shape and np.array_equal(a, b)


def test_torch_to_flax_rejects_foreign_entries():
  config = tiny_config()
  state = dict(GQN(config).state_dict(), extra=torch.zeros(1))
  with pytest.raises(ValueError, match="extra"):
    torch_to_flax(state, config)


# ------------------------------------------------------------------------------- objective

def test_kl_matches_torch_distributions():
  g = torch.Generator().manual_seed(0)
  mean_q, log_q, mean_p, log_p = torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float64)
  normal = torch.distributions.Normal
  expected = torch.distributions.kl_divergence(normal(mean_q, log_q.exp()),
                                               normal(mean_p, log_p.exp()))
  torch.testing.assert_close(objective.gaussian_kl(mean_q, log_q, mean_p, log_p), expected)


def test_nll_matches_torch_distributions():
  g = torch.Generator().manual_seed(0)
  target, mean = torch.rand(2, 2, 3, 4, 4, generator=g, dtype=torch.float64)
  expected = -torch.distributions.Normal(mean, 0.7).log_prob(target).flatten(1).sum(1)
  torch.testing.assert_close(objective.gaussian_nll(target, mean, 0.7), expected)


@pytest.mark.parametrize("free_nats", [0.0, 1.0])
def test_training_loss_and_its_gradient_match_gqn_jax(free_nats):
  """Free nats: the same floored loss and the same gradient in each step's KL as gqn_jax's."""
  from gqn_jax import objective as jax_objective  # pylint: disable=g-import-not-at-top
  g = torch.Generator().manual_seed(0)
  kl_per_step = torch.randn(6, 4, generator=g, dtype=torch.float64).exp().requires_grad_()
  nll = torch.randn(6, generator=g, dtype=torch.float64)
  terms = objective.ElboTerms(nll=nll, kl=kl_per_step.sum(1), kl_per_step=kl_per_step,
                              mean=torch.zeros(6, 3, 1, 1, dtype=torch.float64))
  loss = objective.training_loss(terms, free_nats)
  loss.backward()

  def jax_loss(kl):
    jax_terms = jax_objective.ElboTerms(nll=jnp.asarray(nll.numpy()), kl=jnp.sum(kl, 1),
                                        kl_per_step=kl, mean=jnp.zeros((6, 1, 1, 3)))
    return jax_objective.training_loss(jax_terms, free_nats)

  kl = jnp.asarray(kl_per_step.detach().numpy(), jnp.float32)
  np.testing.assert_allclose(loss.item(), float(jax_loss(kl)), rtol=1e-5)
  np.testing.assert_allclose(kl_per_step.grad.numpy(), np.asarray(jax.grad(jax_loss)(kl)),
                             rtol=1e-5)
  if free_nats:  # the floor is active for some steps and not for others
    assert 0 < int((kl_per_step.grad == 0).sum()) < kl_per_step.numel()


# ------------------------------------------------------------------------------ the model

@pytest.mark.parametrize("representation", ["pyramid", "tower", "pool"])
def test_r_is_a_masked_sum_over_views(representation):
  """r ignores masked views (even non-finite ones) and does not depend on the views' order."""
  model = GQN(tiny_config(representation))
  batch = make_batch(model.config)
  images, poses = batch["context_images"], batch["context_poses"]
  mask = torch.tensor([[True, False, True], [True, True, True]])
  with torch.no_grad():
    r = model.represent(images, poses, mask)
    junk = images.clone()
    junk[0, 1] = float("nan")
    order = torch.tensor([2, 0, 1])
    assert torch.equal(model.represent(junk, poses, mask), r)
    torch.testing.assert_close(
        model.represent(images[:, order], poses[:, order], mask[:, order]), r)
    single = model.represent(images[:, :1], poses[:, :1])
    torch.testing.assert_close(model.represent(images, poses, torch.tensor(
        [[True, False, False], [True, False, False]])), single)


def test_generation_does_not_use_the_inference_network():
  model = GQN(tiny_config())
  batch = make_batch(model.config)
  args = (batch["context_images"], batch["context_poses"], batch["query_pose"],
          batch["context_mask"], batch["noise"])
  with torch.no_grad():
    before = model.generate(*args)
    for module in (model.generator.inference_cores, model.generator.posteriors,
                   model.generator.image_downsample, model.generator.canvas_downsample):
      for p in module.parameters():
        p.add_(1.0)
    assert torch.equal(model.generate(*args), before)


def test_shared_cores_hold_one_copy_of_the_per_step_layers():
  """Unshared minus shared parameter count = (L - 1) x one step's cores, heads and upsample."""
  count = lambda m: sum(p.numel() for p in m.parameters())
  shared, unshared = GQN(tiny_config(share_cores=True)), GQN(tiny_config(share_cores=False))
  g = shared.generator
  per_step = sum(count(m[0]) for m in (g.inference_cores, g.generation_cores, g.priors,
                                       g.posteriors, g.canvas_upsamples))
  assert count(unshared) - count(shared) == (shared.config.steps - 1) * per_step


# ------------------------------------------------------------------------------ train step

def test_first_adam_step_moves_each_weight_by_the_scheduled_rate():
  """Adam's first update is lr * g / (|g| + eps): each weight with |g| >> eps moves by lr(s).
  At s = 8e5 that is 2.75e-4; the step also reports sigma(s)."""
  step = 800_000
  torch.manual_seed(0)
  model = GQN(tiny_config())
  before = [p.detach().clone() for p in model.parameters()]
  train_step = make_train_step(model)
  metrics = train_step(make_batch(model.config), step)
  assert float(metrics["sigma"]) == pytest.approx(schedules.pixel_sigma(step))
  assert float(metrics["learning_rate"]) == pytest.approx(2.75e-4)
  moved, checked = [], 0
  for p, old in zip(model.parameters(), before):
    grad = train_step.optimizer.state[p]["exp_avg"] / 0.1  # first step: m = (1 - b1) g
    large = grad.abs() > 1e-4
    moved.append(((p.detach() - old).abs()[large] / 2.75e-4))
    checked += int(large.sum())
  moved = torch.cat(moved)
  assert checked > 1000
  torch.testing.assert_close(moved, torch.ones_like(moved), rtol=0, atol=1e-3)


def test_train_step_lowers_the_loss_on_a_fixed_batch():
  torch.manual_seed(0)
  model = GQN(tiny_config())
  train_step = make_train_step(model)
  batch = make_batch(model.config)
  losses = [float(train_step(batch, 0)["loss"]) for _ in range(10)]
  assert losses[-1] < losses[0]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_compiled_step_matches_eager_without_recompiling(dtype):
  """torch.compile captures the whole loss as one graph (AOTAutograd backend; sigma changes
  every step and must not trigger a recompile) and gives eager's numbers, autocast included."""
  from torch._dynamo.utils import counters
  torch._dynamo.reset()
  counters.clear()
  losses = {}
  for compiled in (False, True):
    torch.manual_seed(0)
    model = GQN(dataclasses.replace(tiny_config(), dtype=dtype))
    train_step = make_train_step(model, compile=compiled, compile_backend="aot_eager")
    losses[compiled] = [float(train_step(make_batch(model.config, seed), s)["loss"])
                        for seed, s in enumerate((0, 1000, 2000))]
  np.testing.assert_allclose(losses[True], losses[False], rtol=1e-5)
  assert counters["stats"]["unique_graphs"] == 1


@pytest.mark.slow
def test_inductor_compiled_step_matches_eager():
  """The benchmark's compiled path (inductor, C++ on CPU) runs and agrees with eager."""
  torch._dynamo.reset()
  losses = {}
  for compiled in (False, True):
    torch.manual_seed(0)
    model = GQN(tiny_config(steps=2))
    train_step = make_train_step(model, compile=compiled)
    losses[compiled] = [float(train_step(make_batch(model.config, seed), s)["loss"])
                        for seed, s in enumerate((0, 1000))]
  np.testing.assert_allclose(losses[True], losses[False], rtol=1e-4)


# ------------------------------------------------------------------------------- bfloat16

@pytest.mark.parametrize("representation", ["pyramid", "tower", "pool"])
def test_bfloat16_mode_convolves_in_bfloat16_and_tracks_float32(representation):
  """dtype='bfloat16' (autocast): every convolution returns bfloat16, the ELBO terms and images
  stay float32, and NLL and each step's KL stay within bfloat16's rounding of float32's for the
  same weights and noise (checked apart: the NLL is ~1000x the KL on this model)."""
  torch.manual_seed(0)
  config = tiny_config(representation)
  reference = GQN(config)
  bf16 = GQN(dataclasses.replace(config, dtype="bfloat16"))
  bf16.load_state_dict(reference.state_dict())
  conv_dtypes = []
  for module in bf16.modules():
    if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
      module.register_forward_hook(lambda m, i, out: conv_dtypes.append(out.dtype))
  batch = make_batch(config)
  context = (batch["context_images"], batch["context_poses"])
  kwargs = dict(context_mask=batch["context_mask"], noise=batch["noise"])
  with torch.no_grad():
    want, got = (model(*context, batch["query_pose"], batch["query_image"], 1.0, **kwargs)
                 for model in (reference, bf16))
    generated = bf16.generate(*context, batch["query_pose"], **kwargs)
  assert conv_dtypes and set(conv_dtypes) == {torch.bfloat16}
  assert {got.nll.dtype, got.kl_per_step.dtype, got.mean.dtype, generated.dtype} == {
      torch.float32}
  torch.testing.assert_close(got.nll, want.nll, rtol=2e-3, atol=0)  # measured ~1e-4
  torch.testing.assert_close(got.kl_per_step, want.kl_per_step, rtol=1e-2, atol=1e-4)  # ~2e-3
  torch.testing.assert_close(got.mean, want.mean, rtol=0, atol=1e-2)  # measured 1.6e-3
  assert not torch.equal(got.mean, want.mean)  # bfloat16 rounding did happen


def test_kl_of_bfloat16_heads_is_computed_in_float32():
  """bfloat16 means and log-scales in, a float32 KL out that matches float64 arithmetic on the
  same (bfloat16-rounded) values far more closely than bfloat16 arithmetic could."""
  g = torch.Generator().manual_seed(0)
  heads = [x.to(torch.bfloat16) for x in torch.randn(4, 2, 3, 5, 5, generator=g)]
  kl = objective.gaussian_kl(*heads)
  exact = objective.gaussian_kl(*(x.double() for x in heads))
  assert kl.dtype == torch.float32
  torch.testing.assert_close(kl.double(), exact, rtol=1e-5, atol=1e-6)


def test_bfloat16_train_step_lowers_the_loss():
  torch.manual_seed(0)
  model = GQN(dataclasses.replace(tiny_config(), dtype="bfloat16"))
  train_step = make_train_step(model)
  batch = make_batch(model.config)
  losses = [float(train_step(batch, 0)["loss"]) for _ in range(10)]
  assert all(p.dtype == torch.float32 for p in model.parameters())
  assert losses[-1] < losses[0]


# ------------------------------------------------------------------------------- benchmark

def test_benchmark_record_has_the_agreed_fields():
  """experiments/benchmark_torch.py's measurement, in-process on the tiny model."""
  from experiments import benchmark_torch
  config = benchmark_torch.parse_overrides(
      ["image_size=16", "r_channels=16", "steps=2", "hidden_channels=8", "canvas_channels=6",
       "latent_channels=2", "share_cores=true"])
  assert config.share_cores and config.steps == 2
  record = benchmark_torch.measure(config, batch=2, context_views=3, warmup_steps=1,
                                   timed_steps=2, compile=False, threads=0)
  assert {"impl", "config", "batch", "context_views", "steps_per_s", "scenes_per_s",
          "compile_s", "peak_mem_mib"} <= record.keys()
  assert record["impl"] == "pytorch" and record["config"]["steps"] == 2
  assert record["scenes_per_s"] == pytest.approx(2 * record["steps_per_s"])
  assert record["peak_mem_mib"] > 0 and record["compile_s"] >= 0
  assert record["device"] == "cpu" and record["device_peak_mem_mib"] is None


def test_pose_rays_have_no_baseline_counterpart():
  """The baseline is the paper's model (with the reference config's levers): asked for per-cell
  pose rays it refuses by name rather than build a different model that benchmarks and parity
  tests would take for the same one."""
  with pytest.raises(ValueError, match="pose_rays"):
    GQN(dataclasses.replace(tiny_config(), pose_rays=True))
