#!/usr/bin/env python3
"""The first run on an NVIDIA GPU machine, in one command: checks, benchmark, training, one JSON.

  python3 experiments/accelerator_check.py --output=accelerator_report.json
  python3 experiments/accelerator_check.py --dry_run_cpu --output=/tmp/report.json  # rehearsal

Made for a GPU machine with no network and a Python of its own (3.11+) that has CUDA builds of
JAX and PyTorch (whatever versions it has, newer than requirements.lock's too) and flax and
optax, but not the data stack (TensorFlow, TFDS, grain, MuJoCo, Beam, clu are never imported).
The benchmark part imports experiments/benchmark.py, whose case table reads gqn_jax's configs
and so needs ml-collections, which is pure Python: where it is missing, carry its wheel
(``pip download --no-deps ml-collections==1.1.0``) and ``pip install`` it there; without it
that part is skipped with a note. Run it from a checkout of this repository, which it imports from (gqn_jax, the
PyTorch baseline in experiments/baselines/torch_gqn, tests/reference_generator.py); nothing is
installed. All inputs are synthetic. What is missing (PyTorch, or PyTorch's GPU) is skipped
with a note in the report; without a GPU for JAX the script refuses, saying so, unless
``--dry_run_cpu``.

In order, each part skipped with a note when the time budget (``--budget_s``, 450 s: the
whole run stays under 8 minutes) would not cover it:

1. checks (float32, matmuls at full precision, so that differences are the implementations'):
   the scanned generator against tests/reference_generator.py (the paper's loop, written
   literally) in every core variant; gqn_jax against the PyTorch baseline on the GPU (NLL, KL
   per step, mean image, generation, every parameter's gradient, after weight conversion); the
   data-parallel train step over all local devices against the same step on one device.
2. benchmark: the paper model at batch 36, float32 and bfloat16, gqn_jax and PyTorch, each in a
   fresh process (experiments/benchmark.py's measure_jax and measure_torch): steps/s, compile
   time, peak GPU memory.
3. training: the paper model trained with the data-parallel step over all local devices on
   synthetic scenes (a coloured stripe whose place depends on the camera's yaw, over a
   coloured background: learnable from the context views) for what is left of the budget, up
   to ``--train_seconds``; the report has the loss curve's start and end.

``--dry_run_cpu``: the same parts on the CPU with a tiny model (2 simulated devices, 1 timed
benchmark step, a few training steps), in well under a minute; tests/test_accelerator_check.py
runs it. The exit status is 0 when every part that ran passed, 1 otherwise, 2 on refusal.
"""

import argparse
import dataclasses
import datetime
import inspect
import json
import os
import pathlib
import platform
import sys
import time
import traceback

ROOT = pathlib.Path(__file__).resolve().parents[1]

TINY = dict(image_size=24, representation="tower", r_channels=16, steps=3, hidden_channels=8,
            canvas_channels=8, latent_channels=2)
# Generator variants checked against the reference (gqn_jax/cpu_kernels.py describes the backends).
GENERATOR_OPTIONS = [dict(share_cores=s, conv_backend=b) for s in (False, True)
                     for b in ("xla", "explicit_vjp", "im2col")]
GENERATOR_OPTIONS += [dict(scan_unroll=3), dict(remat=True)]
PARITY_REPRESENTATIONS = ("pyramid", "tower", "pool")
OUTPUT_TOLERANCE = 1e-4     # max |a - b| / max |b|, as tests/test_torch_parity.py.
GRADIENT_TOLERANCE = 1e-3   # per parameter, |g_a - g_b| / |g_b|.
STEP_TOLERANCE = 1e-4       # parameters after a data-parallel step vs one device.
DATA_STACK = ("tensorflow", "tensorflow_datasets", "grain", "mujoco", "apache_beam", "clu",
              "matplotlib")


class Budget:
  def __init__(self, seconds: float):
    self.start, self.seconds = time.monotonic(), seconds

  def left(self) -> float:
    return self.seconds - (time.monotonic() - self.start)


def setup_environment(dry_run_cpu: bool) -> None:
  """Before JAX is imported: the platform, and GPU memory left for the benchmark's processes."""
  if dry_run_cpu:
    os.environ["JAX_PLATFORMS"] = "cpu"
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
      os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=2".strip()
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # PyTorch stays on the CPU too.
    # Compiling dominates a tiny model's run, the benchmark's processes' too.
    os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "true")
  # JAX would take 75% of GPU memory up front; the benchmark's fresh processes need it.
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
      sys.path.insert(0, str(path))


def versions() -> dict:
  import importlib.metadata  # pylint: disable=g-import-not-at-top
  found = {"python": platform.python_version()}
  for name in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "torch"):
    try:
      found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      found[name] = None
  return found


def torch_status(dry_run_cpu: bool):
  """(torch module or None, device 'cuda' / 'cpu' or None, note)."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None, None, "PyTorch is not installed: its checks and benchmark cases are skipped"
  if dry_run_cpu:
    return torch, "cpu", None
  if not torch.cuda.is_available():
    return torch, None, (f"PyTorch {torch.__version__} sees no GPU (CUDA build: "
                         f"{torch.version.cuda or 'none'}): its checks and cases are skipped")
  return torch, "cuda", None


def run_part(report: dict, name: str, budget: Budget, needs_s: float, fn, *args):
  """Runs ``fn`` into report['parts'][name], or skips it when the budget is short."""
  if budget.left() < needs_s:
    report["parts"][name] = {"status": "skipped",
                             "note": f"{budget.left():.0f} s of the budget left, {needs_s:.0f} "
                                     f"s needed"}
    return
  start = time.monotonic()
  try:
    result = fn(*args)
  except Exception as error:  # pylint: disable=broad-except
    result = {"status": "error", "error": f"{type(error).__name__}: {error}",
              "traceback": traceback.format_exc(limit=6)}
  result["seconds"] = round(time.monotonic() - start, 2)
  report["parts"][name] = result
  print(f"[{name}] {result['status']} in {result['seconds']} s", flush=True)


def relative_error(actual, expected) -> float:
  import numpy as np  # pylint: disable=g-import-not-at-top
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-30))


# --- gqn_jax, whichever version of its train-step API is in the tree ---------------------------

def model_config(**fields):
  from gqn_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  return config_lib.model_config(dataclasses.asdict(config_lib.ModelConfig()) | fields)


def dummy_batch(model_cfg, batch_size, views):
  from gqn_jax import model as model_lib  # pylint: disable=g-import-not-at-top
  from gqn_jax import train_step as ts  # pylint: disable=g-import-not-at-top
  make = getattr(model_lib, "dummy_batch", None) or ts.dummy_batch
  return make(model_cfg, batch_size, views)


_STEPS, _STATES = {}, {}


def initial_state(model, optim_cfg):
  """The train state from key 0, on the host; built (jitted) once per model and optimiser."""
  import jax  # pylint: disable=g-import-not-at-top
  from gqn_jax import train_step as ts  # pylint: disable=g-import-not-at-top
  key = (model.config, optim_cfg)
  if key not in _STATES:
    create = jax.jit(lambda rng: ts.create_train_state(model, optim_cfg, rng))
    _STATES[key] = jax.device_get(create(jax.random.key(0)))
  return _STATES[key]


def data_parallel_step(model, optim_cfg, mesh):
  """(replicated state, batch sharded over ``mesh``, rng) -> (state, metrics), jitted.

  One per (model, optimiser, devices): the check and the training share a compiled step.
  """
  from gqn_jax import parallel  # pylint: disable=g-import-not-at-top
  from gqn_jax import train_step as ts  # pylint: disable=g-import-not-at-top
  key = (model.config, optim_cfg, tuple(d.id for d in mesh.devices.flat))
  if key not in _STEPS:
    if "mesh" in inspect.signature(ts.make_train_step).parameters:
      _STEPS[key] = ts.make_train_step(model, optim_cfg, mesh)
    else:
      _STEPS[key] = parallel.train_step(model, optim_cfg, mesh)
  return _STEPS[key]


# --- 1. checks ----------------------------------------------------------------------------------

def check_generator(dry_run_cpu: bool) -> dict:
  """The scanned generator vs the literal reference loop, posterior and prior, every variant."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import reference_generator  # pylint: disable=g-import-not-at-top
  from gqn_jax.generator import Generator  # pylint: disable=g-import-not-at-top
  options = GENERATOR_OPTIONS[:1] if dry_run_cpu else GENERATOR_OPTIONS
  results, worst = [], 0.0
  with jax.default_matmul_precision("highest"):
    for option in options:
      cfg = model_config(**TINY, **option)
      keys = jax.random.split(jax.random.key(0), 5)
      grid = cfg.grid_size
      r = jax.random.uniform(keys[0], (2, grid, grid, 16))
      pose = jax.random.normal(keys[1], (2, 7))
      target = jax.random.uniform(keys[2], (2, cfg.image_size, cfg.image_size, 3))
      noise = jax.random.normal(keys[3], (2, cfg.steps, grid, grid, cfg.latent_channels))
      params = Generator(cfg).init(keys[4], r, pose, target, noise)["params"]
      leaves, treedef = jax.tree.flatten(params)  # non-zero biases: every bias path counts.
      params = jax.tree.unflatten(treedef, [
          x + 0.1 * jax.random.normal(k, x.shape)
          for x, k in zip(leaves, jax.random.split(keys[4], len(leaves)))])
      apply = jax.jit(lambda p, t: Generator(cfg).apply({"params": p}, r, pose, t, noise))
      for mode, t in (("posterior", target), ("prior", None)):
        mean, kl = apply(params, t)
        ref_mean, ref_kl = reference_generator.generate(params, cfg, r, pose, t, noise)
        errors = {"mean": relative_error(mean, ref_mean)}
        if t is not None:
          errors["kl_per_step"] = relative_error(kl, ref_kl)
        worst = max(worst, *errors.values())
        results.append({"options": option, "mode": mode, **errors})
  return {"status": "pass" if worst < OUTPUT_TOLERANCE else "fail", "tolerance":
          OUTPUT_TOLERANCE, "worst_relative_error": worst, "cases": results,
          "device": str(jax.devices()[0].device_kind)}


def check_torch_parity(torch, device: str, dry_run_cpu: bool) -> dict:
  """gqn_jax and the PyTorch baseline, same converted weights, inputs and noise, on ``device``."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from experiments.baselines.torch_gqn import GQN as TorchGQN  # pylint: disable=g-import-not-at-top
  from experiments.baselines.torch_gqn import flax_to_torch, torch_to_flax  # pylint: disable=g-import-not-at-top
  from gqn_jax.model import GQN  # pylint: disable=g-import-not-at-top
  # Full float32 on both sides: TF32 would hide differences of the implementations.
  torch.backends.cuda.matmul.allow_tf32 = False
  torch.backends.cudnn.allow_tf32 = False
  sigma, mask = 0.9, np.array([[True, True, False], [True, False, False]])
  cases, worst = [], {"outputs": 0.0, "gradients": 0.0}
  for representation in PARITY_REPRESENTATIONS[:1] if dry_run_cpu else PARITY_REPRESENTATIONS:
    config = model_config(image_size=16, representation=representation, r_channels=16,
                          steps=3, hidden_channels=8, canvas_channels=6, latent_channels=2,
                          conv_backend="xla")
    rng = np.random.default_rng(0)
    size, grid = config.image_size, config.grid_size
    x = dict(context_images=rng.uniform(size=(2, 3, size, size, 3)).astype(np.float32),
             context_poses=rng.normal(size=(2, 3, 7)).astype(np.float32),
             query_pose=rng.normal(size=(2, 7)).astype(np.float32),
             query_image=rng.uniform(size=(2, size, size, 3)).astype(np.float32),
             context_mask=mask,
             noise=rng.normal(size=(2, config.steps, grid, grid,
                                    config.latent_channels)).astype(np.float32))
    x["context_images"][~mask] = 100.0  # junk in masked views must not reach r.
    torch.manual_seed(1)
    params = torch_to_flax(TorchGQN(config).state_dict(), config)

    model = GQN(config)

    def outputs(params):
      def loss(params):
        terms = model.apply({"params": params}, x["context_images"], x["context_poses"],
                            x["query_pose"], x["query_image"], sigma, x["context_mask"],
                            x["noise"])
        return terms.loss.mean(), terms
      (_, terms), grads = jax.value_and_grad(loss, has_aux=True)(params)
      generated = model.apply({"params": params}, x["context_images"], x["context_poses"],
                              x["query_pose"], x["context_mask"], x["noise"],
                              method=GQN.generate)
      return dict(nll=terms.nll, kl_per_step=terms.kl_per_step, mean=terms.mean,
                  generated=generated, gradients=grads)

    with jax.default_matmul_precision("highest"):
      ours = jax.tree.map(np.asarray, jax.jit(outputs)(params))

    theirs_model = TorchGQN(config)
    flax_to_torch(params, theirs_model)
    theirs_model.to(device)
    t = {k: torch.from_numpy(np.array(v)).to(device) for k, v in x.items()}
    images = t["context_images"].permute(0, 1, 4, 2, 3)
    noise = t["noise"].permute(0, 1, 4, 2, 3)
    terms = theirs_model(images, t["context_poses"], t["query_pose"],
                         t["query_image"].permute(0, 3, 1, 2), sigma,
                         context_mask=t["context_mask"], noise=noise)
    terms.loss.mean().backward()
    grads = torch_to_flax({n: p.grad.cpu() for n, p in theirs_model.named_parameters()}, config)
    with torch.no_grad():
      generated = theirs_model.generate(images, t["context_poses"], t["query_pose"],
                                        context_mask=t["context_mask"], noise=noise)
    theirs = dict(nll=terms.nll.detach().cpu().numpy(),
                  kl_per_step=terms.kl_per_step.detach().cpu().numpy(),
                  mean=terms.mean.detach().permute(0, 2, 3, 1).cpu().numpy(),
                  generated=generated.permute(0, 2, 3, 1).cpu().numpy())
    errors = {k: relative_error(theirs[k], ours[k]) for k in theirs}
    grad_errors = [float(np.linalg.norm(np.asarray(a) - b) / max(np.linalg.norm(b), 1e-30))
                   for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ours["gradients"]))]
    worst["outputs"] = max(worst["outputs"], *errors.values())
    worst["gradients"] = max(worst["gradients"], *grad_errors)
    cases.append({"representation": representation, **errors,
                  "worst_gradient_error": max(grad_errors), "parameters": len(grad_errors)})
  passed = (worst["outputs"] < OUTPUT_TOLERANCE and worst["gradients"] < GRADIENT_TOLERANCE)
  return {"status": "pass" if passed else "fail", "torch_device": device,
          "jax_device": str(jax.devices()[0].device_kind), "worst": worst,
          "tolerances": {"outputs": OUTPUT_TOLERANCE, "gradients": GRADIENT_TOLERANCE},
          "cases": cases}


def check_data_parallel() -> dict:
  """One train step over every local device == the same step on one device (global batch)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from gqn_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  from gqn_jax import parallel  # pylint: disable=g-import-not-at-top
  from gqn_jax import train_step as ts  # pylint: disable=g-import-not-at-top
  from gqn_jax.model import GQN  # pylint: disable=g-import-not-at-top
  devices = jax.local_devices()
  cfg = model_config(**TINY)
  optim_cfg = config_lib.OptimConfig()
  model = GQN(cfg)
  batch = synthetic_batch(np.random.default_rng(0), 2 * len(devices), 3, cfg.image_size)
  results = {}
  with jax.default_matmul_precision("highest"):
    for name, mesh_devices in (("one_device", devices[:1]), ("all_devices", devices)):
      mesh = parallel.data_mesh(mesh_devices)
      state = parallel.replicate(initial_state(model, optim_cfg), mesh)
      step = data_parallel_step(model, optim_cfg, mesh)
      state, metrics = step(state, parallel.shard_batch(batch, mesh), jax.random.key(1))
      results[name] = (jax.tree.map(np.asarray, jax.device_get(state.params)),
                       float(metrics["loss"]))
  (one, loss_one), (every, loss_every) = results["one_device"], results["all_devices"]
  worst = max(relative_error(a, b) for a, b in zip(jax.tree.leaves(every), jax.tree.leaves(one)))
  record = {"status": "pass" if worst < STEP_TOLERANCE and np.isclose(loss_one, loss_every,
                                                                       rtol=1e-5) else "fail",
            "devices": len(devices), "global_batch": 2 * len(devices),
            "loss_one_device": loss_one, "loss_all_devices": loss_every,
            "worst_parameter_relative_error": worst, "tolerance": STEP_TOLERANCE}
  if len(devices) == 1:
    record["note"] = "one local device: both meshes are the same device, so this only runs it"
  return record


# --- 2. benchmark -------------------------------------------------------------------------------

def benchmark(torch_device, dry_run_cpu: bool, budget: Budget, reserve_s: float) -> dict:
  try:
    from experiments import benchmark as bench  # pylint: disable=g-import-not-at-top
    from experiments import harness  # pylint: disable=g-import-not-at-top
  except ModuleNotFoundError as error:
    return {"status": "skipped", "note": f"experiments/benchmark.py needs {error.name}, which "
            f"is not installed; carry its wheel (pip download --no-deps {error.name}) and "
            f"pip install it"}
  if dry_run_cpu:
    cases = [bench.Case("tiny-b4-f32", TINY, batch=4, context_views=3, flops=False)]
    warmup, timed = 1, 1
  else:
    cases = [bench.Case("paper-tower-b36-f32", {}, batch=36, flops=False, device="gpu"),
             bench.Case("paper-tower-b36-bf16", dict(dtype="bfloat16"), batch=36, flops=False,
                        device="gpu")]
    warmup, timed = 2, 5
  records, notes = [], []
  for case in cases:
    for impl in case.impls:
      if impl == "pytorch" and torch_device is None:
        notes.append(f"{case.name}/pytorch skipped: no PyTorch on a GPU")
        continue
      left = budget.left() - reserve_s
      if left < 30:
        notes.append(f"{case.name}/{impl} skipped: {budget.left():.0f} s of the budget left")
        continue
      measure = bench.measure_jax if impl == "gqn_jax" else bench.measure_torch
      start = time.monotonic()
      try:
        raw = harness.isolated(measure, case, warmup, timed, timeout_s=min(left, 200))
      except Exception as error:  # pylint: disable=broad-except
        records.append({"impl": impl, "case": case.name, "error": str(error)})
        continue
      step_s = raw.get("step_s")
      records.append({
          "impl": impl, "case": case.name, "batch": case.batch, "dtype": case.model.get(
              "dtype", "float32"), "step_s": step_s, "steps_per_s": 1 / step_s if step_s else
          None, "scenes_per_s": case.batch / step_s if step_s else None,
          "compile_s": raw.get("compile_s"), "device_peak_mem_mib":
          raw.get("device_peak_mem_mib"), "peak_rss_mib": raw.get("peak_mem_mib"),
          "device": raw.get("device"), "process_s": round(time.monotonic() - start, 1)})
      print(f"  {case.name} {impl}: {step_s} s/step", flush=True)
  failed = [r for r in records if "error" in r]
  ran = [r for r in records if "error" not in r]
  status = "fail" if failed else ("pass" if ran else "skipped")
  return {"status": status, "records": records, "notes": notes}


# --- 3. training on synthetic scenes ------------------------------------------------------------

def synthetic_batch(rng, batch_size: int, views: int, size: int) -> dict:
  """Scenes of a coloured vertical stripe on a coloured background; the stripe's column
  follows the camera's yaw, so the query view is predictable from the context views."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  count = views + 1
  background = rng.uniform(0.1, 0.9, (batch_size, 1, 1, 1, 3))
  stripe = rng.uniform(0.1, 0.9, (batch_size, 1, 1, 1, 3))
  yaw = rng.uniform(-np.pi, np.pi, (batch_size, count))
  pitch = rng.uniform(-0.3, 0.3, (batch_size, count))
  centre = (0.5 + 0.4 * np.sin(yaw)) * size                              # [B, V]
  columns = np.arange(size)[None, None, :]
  inside = np.abs(columns - centre[..., None]) < size / 8                # [B, V, W]
  height = np.clip(0.5 + pitch, 0.2, 0.8)[..., None] * size              # [B, V, 1]
  rows_in = np.arange(size)[None, None, :] < height                      # [B, V, H]
  mask = (rows_in[..., :, None] & inside[..., None, :])[..., None]      # [B, V, H, W, 1]
  images = np.where(mask, stripe, background).astype(np.float32)
  poses = np.stack([np.cos(yaw), np.sin(yaw), np.zeros_like(yaw), np.cos(yaw), np.sin(yaw),
                    np.cos(pitch), np.sin(pitch)], axis=-1).astype(np.float32)
  return {"context_images": images[:, :views], "context_poses": poses[:, :views],
          "context_mask": np.ones((batch_size, views), bool),
          "query_image": images[:, views], "query_pose": poses[:, views]}


def train(dry_run_cpu: bool, seconds: float) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from gqn_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  from gqn_jax import parallel  # pylint: disable=g-import-not-at-top
  from gqn_jax import train_step as ts  # pylint: disable=g-import-not-at-top
  from gqn_jax.model import GQN  # pylint: disable=g-import-not-at-top
  devices = jax.local_devices()
  if dry_run_cpu:
    # The data-parallel check's model, optimiser and batch: its compiled step is reused.
    cfg, per_device, max_steps = model_config(**TINY), 2, 12
    optim_cfg = config_lib.OptimConfig()
  else:
    cfg, per_device, max_steps = model_config(), 36, 10**9  # the paper model
    optim_cfg = config_lib.OptimConfig()
  batch_size = per_device * len(devices) if dry_run_cpu else max(36, len(devices))
  batch_size -= batch_size % len(devices)
  model = GQN(cfg)
  mesh = parallel.data_mesh(devices)
  state = parallel.replicate(initial_state(model, optim_cfg), mesh)
  step = data_parallel_step(model, optim_cfg, mesh)
  views = 3 if dry_run_cpu else 5
  rng, key = np.random.default_rng(0), jax.random.key(1)
  if dry_run_cpu:  # the check's precision too, or its compiled step would not be reused.
    with jax.default_matmul_precision("highest"):
      return _train_loop(step, state, mesh, rng, key, batch_size, views, cfg, seconds,
                         max_steps, dry_run_cpu, len(devices))
  return _train_loop(step, state, mesh, rng, key, batch_size, views, cfg, seconds, max_steps,
                     dry_run_cpu, len(devices))


def _train_loop(step, state, mesh, rng, key, batch_size, views, cfg, seconds, max_steps,
                dry_run_cpu, devices):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from gqn_jax import parallel  # pylint: disable=g-import-not-at-top
  start = time.monotonic()
  state, metrics = step(state, parallel.shard_batch(synthetic_batch(rng, batch_size, views,
                                                                    cfg.image_size), mesh), key)
  losses = [float(metrics["loss"])]
  compile_and_first_s = time.monotonic() - start
  began = time.monotonic()
  while len(losses) < max_steps and time.monotonic() - start < seconds:
    batch = parallel.shard_batch(synthetic_batch(rng, batch_size, views, cfg.image_size), mesh)
    state, metrics = step(state, batch, key)
    losses.append(float(metrics["loss"]))  # float() waits for the step.
  steps = len(losses) - 1
  elapsed = time.monotonic() - began
  window = max(1, min(50, len(losses) // 4))
  first, last = float(np.mean(losses[:window])), float(np.mean(losses[-window:]))
  finite = bool(np.all(np.isfinite(losses)))
  # A real run must learn; the dry run's dozen steps of a tiny model only have to run.
  learned = last < first
  return {"status": "pass" if finite and (learned or dry_run_cpu) else "fail",
          "model": "tiny" if dry_run_cpu else "paper", "global_batch": batch_size,
          "devices": devices, "steps": len(losses),
          "compile_and_first_step_s": round(compile_and_first_s, 2),
          "steps_per_s": steps / elapsed if steps and elapsed > 0 else None,
          "loss_first": first, "loss_last": last, "loss_window": window,
          "loss_decreased": learned, "finite": finite,
          "loss_every_step": [round(x, 3) for x in losses[:: max(1, len(losses) // 200)]]}


# --- main ---------------------------------------------------------------------------------------

def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--output", type=pathlib.Path, default=pathlib.Path(
      "accelerator_report.json"), help="the JSON report")
  parser.add_argument("--dry_run_cpu", action="store_true",
                      help="rehearse every part on the CPU with a tiny model")
  parser.add_argument("--budget_s", type=float, default=450.0,
                      help="wall-time budget; parts that would overrun it are skipped")
  parser.add_argument("--train_seconds", type=float, default=150.0,
                      help="longest training run (it gets what is left of the budget)")
  parser.add_argument("--skip", nargs="*", default=[], choices=[
      "generator", "torch_parity", "data_parallel", "benchmark", "training"])
  args = parser.parse_args(argv)
  setup_environment(args.dry_run_cpu)
  budget = Budget(args.budget_s)
  import gqn_jax  # pylint: disable=g-import-not-at-top,unused-import  # sets XLA flags first.
  import jax  # pylint: disable=g-import-not-at-top
  report = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "mode": "dry_run_cpu" if args.dry_run_cpu else "gpu", "versions": versions(),
            "jax_backend": jax.default_backend(),
            "jax_devices": [f"{d.platform}:{d.device_kind}" for d in jax.devices()],
            "notes": [], "parts": {}}
  if not args.dry_run_cpu and jax.default_backend() != "gpu":
    message = (f"refusing: no GPU for JAX (backend {jax.default_backend()!r}, devices "
               f"{report['jax_devices']}); this script is for an NVIDIA GPU machine with a "
               f"CUDA build of jaxlib (e.g. pip install 'jax[cuda13]'). --dry_run_cpu rehearses "
               f"it on the CPU.")
    print(message, file=sys.stderr)
    report["refused"] = message
    _write(args.output, report, budget)
    return 2
  torch, torch_device, note = torch_status(args.dry_run_cpu)
  if note:
    report["notes"].append(note)
  report["torch_device"] = torch_device
  small = 10 if args.dry_run_cpu else 40
  parts = [("generator", small, check_generator, args.dry_run_cpu),
           ("data_parallel", small, check_data_parallel)]
  if torch_device:
    parts.insert(1, ("torch_parity", small, check_torch_parity, torch, torch_device,
                     args.dry_run_cpu))
  else:
    report["parts"]["torch_parity"] = {"status": "skipped", "note": note}
  for name, needs, fn, *fn_args in parts:
    if name not in args.skip:
      run_part(report, name, budget, needs, fn, *fn_args)
  train_reserve = 20 if args.dry_run_cpu else 90  # compile + a minute of training at least.
  if "benchmark" not in args.skip:
    run_part(report, "benchmark", budget, 30, benchmark, torch_device, args.dry_run_cpu, budget,
             train_reserve)
  if "training" not in args.skip:
    seconds = min(args.train_seconds, budget.left() - 10)
    run_part(report, "training", budget, train_reserve if not args.dry_run_cpu else 5, train,
             args.dry_run_cpu, seconds)
  # What this process imported of the data stack: nothing, on a machine without it.
  report["data_stack_imported"] = sorted(name for name in DATA_STACK if name in sys.modules)
  failed = sorted(n for n, p in report["parts"].items() if p["status"] in ("fail", "error"))
  report["failed"] = failed
  report["ok"] = not failed
  _write(args.output, report, budget)
  print(f"{'ok' if not failed else 'FAILED: ' + ', '.join(failed)}; report: {args.output}")
  return 0 if not failed else 1


def _write(path: pathlib.Path, report: dict, budget: Budget) -> None:
  report["wall_s"] = round(budget.seconds - budget.left(), 1)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(report, indent=1, default=str) + "\n")


if __name__ == "__main__":
  sys.exit(main())
