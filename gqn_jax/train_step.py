"""The training state and the one program that steps it: (state, batch, rng) -> (state, metrics).

``make_train_step(model, optim_cfg, mesh)`` is the only training step: training, evaluation's
counterpart ``make_eval_step``, the benchmarks and the tests all run it. It is written in pmap's
model: a per-device body that sees its own rows of the global batch and averages gradients and
metrics with ``pmean`` over the mesh's ``data`` axis, mapped over the mesh with
``jax.shard_map`` and jitted with the old state's buffers donated to the new one. The state and
the rng are replicated, the batch is split on its leading (scene) axis; a one-device mesh
(``parallel.data_mesh(jax.devices()[:1])``) runs the same program on one device.

Randomness: the step's key is ``fold_in(rng, step)`` and each scene's latent noise comes from
``fold_in(step_key, global_index_of_the_scene)``. A rerun, or a run resumed from a checkpoint,
draws exactly the same noise, and so does a run whose batch is split over a different number of
devices (each device draws the noise of its own slice of the global batch).
"""

import functools
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import PartitionSpec as P

from gqn_jax import objective
from gqn_jax import parallel
from gqn_jax import schedules
from gqn_jax.config import OptimConfig
from gqn_jax.model import GQN, Batch, dummy_batch, latent_noise

LN_2 = 0.6931471805599453


@flax.struct.dataclass
class TrainState:
  step: jax.Array       # int32 scalar: optimizer steps taken.
  params: Any
  opt_state: Any


# Initialisation is jitted (and inlined where a caller jits too): run op by op, it compiles
# each of its many small ops separately, which takes far longer than compiling it once.
@functools.partial(jax.jit, static_argnums=0)
def init_params(model: GQN, rng: jax.Array):
  """Parameters of ``model``; they do not depend on batch size or the number of views."""
  batch = dummy_batch(model.config)
  params_rng, sample_rng = jax.random.split(rng)
  variables = model.init({"params": params_rng, "sample": sample_rng}, batch, 1.0,
                         method=GQN.elbo_terms)
  return variables["params"]


@functools.partial(jax.jit, static_argnums=(0, 1))
def create_train_state(model: GQN, optim_cfg: OptimConfig, rng: jax.Array,
                       params: Any = None) -> TrainState:
  """Step 0 with fresh optimizer state, on ``params`` (default: initialised from ``rng``)."""
  if params is None:
    params = init_params(model, rng)
  opt_state = schedules.optimizer(optim_cfg).init(params)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state)


def over_mesh(per_device_fn: Callable, mesh, batch_argnums: tuple[int, ...], num_args: int,
              donate_argnums: tuple[int, ...] = ()) -> Callable:
  """Jits ``per_device_fn`` mapped over the mesh: arguments in ``batch_argnums`` are split on
  their leading axis, all others and all outputs are replicated.

  The function must make replicated outputs agree across devices itself (``pmean``), as the
  steps below do. ``check_vma`` is off because the per-device code follows pmap's model:
  values computed from the local shard are averaged explicitly, and the model's scan carries
  start as constants that JAX's varying-axis check would otherwise have to be told about.
  """
  in_specs = tuple(P(parallel.DATA_AXIS) if i in batch_argnums else P() for i in range(num_args))
  mapped = jax.shard_map(per_device_fn, mesh=mesh, in_specs=in_specs, out_specs=P(),
                         check_vma=False)
  split = parallel.batch_sharding(mesh)

  def program(*args):
    # Batches already split over the mesh (parallel.shard_batch) pass as they are; others (one
    # device's arrays, in tests and benchmarks) are split here.
    return mapped(*[jax.tree.map(lambda x: jax.reshard(x, split), arg) if i in batch_argnums
                    else arg for i, arg in enumerate(args)])

  return jax.jit(program, donate_argnums=donate_argnums)


def _local_noise(key, model: GQN, batch: Batch):
  """The latent noise of this device's scenes, drawn by their index in the global batch."""
  batch_size = batch["query_image"].shape[0]
  offset = jax.lax.axis_index(parallel.DATA_AXIS) * batch_size
  return latent_noise(key, model.config, batch_size, offset)


def make_train_step(model: GQN, optim_cfg: OptimConfig,
                    mesh) -> Callable[..., tuple[TrainState, dict]]:
  """(replicated state, global batch sharded over ``mesh``, rng) -> (new state, metrics).

  Jitted, with the old state donated. Gradients and metrics are averaged over the mesh, so the
  result equals that of a one-device mesh on the whole batch up to float summation order.
  """
  tx = schedules.optimizer(optim_cfg)
  sigma_schedule = schedules.pixel_sigma(optim_cfg)
  lr_schedule = schedules.learning_rate(optim_cfg)
  model_cfg = model.config
  pixels_per_image = model_cfg.image_size * model_cfg.image_size * 3

  def per_device(state: TrainState, batch: Batch, rng: jax.Array):
    noise = _local_noise(jax.random.fold_in(rng, state.step), model, batch)
    sigma = sigma_schedule(state.step)

    def loss_fn(params):
      terms = model.apply({"params": params}, batch, sigma, noise, method=GQN.elbo_terms)
      loss = objective.training_loss(
          terms, optim_cfg.free_nats_per_step,
          functools.partial(jax.lax.pmean, axis_name=parallel.DATA_AXIS))
      return loss, terms

    (_, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = {
        "loss": jnp.mean(terms.loss),  # the negative ELBO, whatever the optimizer minimises
        "nll": jnp.mean(terms.nll),
        "kl": jnp.mean(terms.kl),
        "kl_per_step": jnp.mean(terms.kl_per_step, axis=0),
    }
    grads = jax.lax.pmean(grads, parallel.DATA_AXIS)
    metrics = jax.lax.pmean(metrics, parallel.DATA_AXIS)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics.update(
        loss_nats_per_dim=metrics["loss"] / pixels_per_image,
        loss_bits_per_dim=metrics["loss"] / (pixels_per_image * LN_2),
        sigma=sigma,
        learning_rate=lr_schedule(state.step),
        grad_norm=optax.tree.norm(grads),
        # The updated parameters' norm: reading the old ones here, unordered with the in-place
        # update of their donated buffers, makes XLA copy every parameter (185M float32 values,
        # 0.74 GB, in the paper model, live for the whole step).
        param_norm=optax.tree.norm(params),
        update_norm=optax.tree.norm(updates),
    )
    new_state = TrainState(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, metrics

  return over_mesh(per_device, mesh, batch_argnums=(1,), num_args=3, donate_argnums=(0,))


def make_eval_step(model: GQN, sigma: float, mesh):
  """(params, sharded batch, rng, batch index) -> mean ELBO terms over the global batch.

  The noise of batch i is drawn from ``fold_in(rng, i)``, per scene as in the train step.
  """

  def per_device(params, batch, rng, index):
    noise = _local_noise(jax.random.fold_in(rng, index), model, batch)
    terms = model.apply({"params": params}, batch, sigma, noise, method=GQN.elbo_terms)
    metrics = {"loss": jnp.mean(terms.loss), "nll": jnp.mean(terms.nll),
               "kl": jnp.mean(terms.kl)}
    return jax.lax.pmean(metrics, parallel.DATA_AXIS)

  return over_mesh(per_device, mesh, batch_argnums=(1,), num_args=4)


def compiled_step_memory(model: GQN, optim_cfg: OptimConfig, batch_size: int,
                         context_views: int):
  """XLA's memory accounting of the train step on one device (arguments, temporaries, ...),
  from compiling it on abstract shapes: nothing is allocated or run."""
  state = jax.eval_shape(lambda: create_train_state(model, optim_cfg, jax.random.key(0)))
  batch = jax.eval_shape(lambda: dummy_batch(model.config, batch_size, context_views))
  step = make_train_step(model, optim_cfg, parallel.data_mesh(jax.devices()[:1]))
  return step.lower(state, batch, jax.random.key(1)).compile().memory_analysis()
