"""Activation memory: what each implementation keeps from the forward pass for the backward pass.

  make bench-activations   # .venv/bin/python -m experiments.saved_activations; writes
                           # experiments/results/saved_activations.{json,md}

A process's peak memory mixes the step's activations with parameters, Adam's state, gradients,
the runtime and what the allocator keeps; in the paper model parameters + Adam + gradients alone
are 2.9 GB. This counts the activations alone, the part remat exists to shrink, the same way in
both implementations: the bytes held between the forward and the backward pass, beyond the
parameters and inputs themselves.

- gqn_jax: the residuals of ``jax.vjp`` of the loss (traced, nothing runs), less those that are
  the function's own arguments. It is the program's own count; XLA may fuse or alias some.
- PyTorch: the tensors autograd saves during one eager forward pass
  (``torch.autograd.graph.saved_tensors_hooks``), counted once per storage, less the storages
  of parameters and inputs. Everything saved is alive together when the forward pass ends.

The markdown table (beside the JSON) gives each case's ratio to the
PyTorch baseline at the same batch.
"""

import dataclasses

from experiments import harness
from gqn_jax.config import ModelConfig

MIB = 2.0**20


def jax_residuals(fn, *args) -> list:
  """The abstract values of ``jax.vjp(fn, *args)``'s residuals that are not ``args``
  themselves, each once. ``args`` may be arrays or ``jax.ShapeDtypeStruct``s: only shapes are
  traced."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax.extend import core  # pylint: disable=g-import-not-at-top

  jaxpr = jax.make_jaxpr(lambda *a: jax.vjp(fn, *a)[1])(*args).jaxpr
  arguments = set(map(id, jaxpr.invars))
  counted, residuals = set(), []
  for var in jaxpr.outvars:  # the vjp function's leaves: its residuals
    if isinstance(var, core.Literal) or id(var) in arguments or id(var) in counted:
      continue
    counted.add(id(var))
    residuals.append(var.aval)
  return residuals


def jax_saved_bytes(fn, *args) -> int:
  """Bytes of ``jax_residuals(fn, *args)``."""
  return sum(aval.size * aval.dtype.itemsize for aval in jax_residuals(fn, *args))


def torch_saved_bytes(forward, exclude=()) -> tuple[int, object]:
  """(bytes autograd saves while running ``forward()``, its result), each storage once, less
  the storages of the tensors in ``exclude`` (parameters, inputs)."""
  import torch  # pylint: disable=g-import-not-at-top

  excluded = {t.untyped_storage().data_ptr() for t in exclude}
  saved = {}

  def pack(tensor):
    storage = tensor.untyped_storage()
    if storage.data_ptr() not in excluded:
      saved[storage.data_ptr()] = storage.nbytes()
    return tensor

  with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
    result = forward()
  return sum(saved.values()), result


def model_config(overrides: dict):
  from gqn_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  return config_lib.model_config(dataclasses.asdict(ModelConfig()) | overrides)


def gqn_jax_saved_mib(overrides: dict, batch: int, context_views: int) -> float:
  """gqn_jax's loss at the paper's architecture with ``overrides``, shapes only."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from gqn_jax import train_step as ts  # pylint: disable=g-import-not-at-top
  from gqn_jax.model import GQN, dummy_batch, latent_noise  # pylint: disable=g-import-not-at-top

  config = model_config(overrides)
  model = GQN(config)
  params = jax.eval_shape(lambda: ts.init_params(model, jax.random.key(0)))
  data = jax.eval_shape(lambda: dummy_batch(config, batch, context_views))
  noise = jax.eval_shape(lambda: latent_noise(jax.random.key(1), config, batch))

  def loss(params, data, noise):
    return jnp.mean(model.apply({"params": params}, data, 1.0, noise,
                                method=GQN.elbo_terms).loss)

  return jax_saved_bytes(loss, params, data, noise) / MIB


def pytorch_saved_mib(overrides: dict, batch: int, context_views: int) -> float:
  """The PyTorch baseline's loss, one forward pass on random data."""
  import torch  # pylint: disable=g-import-not-at-top
  # pylint: disable=g-import-not-at-top
  from experiments.baselines.torch_gqn.model import GQN
  from experiments.baselines.torch_gqn.train import loss_and_terms
  from experiments.benchmark_torch import random_batch

  config = model_config(overrides)
  torch.manual_seed(0)
  model = GQN(config)
  data = random_batch(config, batch, context_views)
  saved, _ = torch_saved_bytes(lambda: loss_and_terms(model, data, torch.tensor(1.0)),
                               exclude=[*model.parameters(), *data.values()])
  return saved / MIB


# (case, impl, overrides): the paper's tower model, plain and with remat (gqn_jax only).
CASES = [("paper-tower", "gqn_jax", {}), ("paper-tower-remat", "gqn_jax", {"remat": True}),
         ("paper-tower", "pytorch", {})]
MEASURE = {"gqn_jax": gqn_jax_saved_mib, "pytorch": pytorch_saved_mib}


def measure(batches, context_views: int, cases=CASES) -> list[dict]:
  return [{"case": case, "impl": impl, "batch": batch, "context_views": context_views,
           "saved_activations_mib": MEASURE[impl](overrides, batch, context_views)}
          for batch in batches for case, impl, overrides in cases]


def markdown_table(records) -> str:
  baseline = {r["batch"]: r["saved_activations_mib"] for r in records if r["impl"] == "pytorch"}
  lines = ["| case | impl | batch | saved activations (MiB) | / PyTorch's |",
           "|---|---|---|---|---|"]
  for r in records:
    ratio = (f"{r['saved_activations_mib'] / baseline[r['batch']]:.2f}"
             if r["batch"] in baseline else "")
    lines.append(f"| {r['case']} | {r['impl']} | {r['batch']} | "
                 f"{r['saved_activations_mib']:.0f} | {ratio} |")
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = harness.parser(__doc__, output="saved_activations.json")
  parser.add_argument("--batch", type=int, nargs="+", default=[4, 36])
  parser.add_argument("--context_views", type=int, default=5)
  args = parser.parse_args(argv)
  records = measure(args.batch, args.context_views)
  table = markdown_table(records)
  print(table, end="")
  harness.write_results(args.output, records, table)


if __name__ == "__main__":
  harness.prepare_process()
  main()
