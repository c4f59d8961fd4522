"""The training state and one pure training step: (state, batch, rng) -> (state, metrics).

Randomness: the step's key is ``fold_in(rng, step)`` and each scene's latent noise comes from
``fold_in(step_key, global_index_of_the_scene)``. A rerun, or a run resumed from a checkpoint,
draws exactly the same noise, and so does a run whose batch is split over a different number of
devices (the data-parallel step passes the offset of its shard).
"""

from typing import Any, Callable, Mapping

import flax.struct
import jax
import jax.numpy as jnp
import optax

from gqn_jax import schedules
from gqn_jax.config import ModelConfig, OptimConfig
from gqn_jax.model import GQN

Batch = Mapping[str, jax.Array]
LN_2 = 0.6931471805599453


@flax.struct.dataclass
class TrainState:
  step: jax.Array       # int32 scalar: optimizer steps taken.
  params: Any
  opt_state: Any


def dummy_batch(model_cfg: ModelConfig, batch_size: int = 1, context_views: int = 1) -> Batch:
  """Zeros of the shapes the model takes, for initialisation and shape checks."""
  size = model_cfg.image_size
  return {
      "context_images": jnp.zeros((batch_size, context_views, size, size, 3)),
      "context_poses": jnp.zeros((batch_size, context_views, 7)),
      "context_mask": jnp.ones((batch_size, context_views), bool),
      "query_image": jnp.zeros((batch_size, size, size, 3)),
      "query_pose": jnp.zeros((batch_size, 7)),
  }


def init_params(model: GQN, rng: jax.Array):
  """Parameters of ``model``; they do not depend on batch size or the number of views."""
  batch = dummy_batch(model.config)
  params_rng, sample_rng = jax.random.split(rng)
  variables = model.init({"params": params_rng, "sample": sample_rng},
                         batch["context_images"], batch["context_poses"], batch["query_pose"],
                         batch["query_image"], 1.0, batch["context_mask"])
  return variables["params"]


def create_train_state(model: GQN, optim_cfg: OptimConfig, rng: jax.Array) -> TrainState:
  params = init_params(model, rng)
  opt_state = schedules.optimizer(optim_cfg).init(params)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state)


def latent_noise(step_rng, model_cfg: ModelConfig, batch_size: int, offset=0):
  """[B, L, G, G, Z] standard normals; scene b's depends only on (step_rng, offset + b)."""
  grid = model_cfg.grid_size
  shape = (model_cfg.steps, grid, grid, model_cfg.latent_channels)
  indices = offset + jnp.arange(batch_size)
  keys = jax.vmap(lambda i: jax.random.fold_in(step_rng, i))(indices)
  return jax.vmap(lambda key: jax.random.normal(key, shape))(keys)


def elbo_terms(model: GQN, params, batch: Batch, sigma, noise):
  return model.apply({"params": params}, batch["context_images"], batch["context_poses"],
                     batch["query_pose"], batch["query_image"], sigma,
                     batch.get("context_mask"), noise)


def make_train_step(model: GQN, optim_cfg: OptimConfig,
                    axis_name: str | None = None) -> Callable[..., tuple[TrainState, dict]]:
  """Builds the step function (not jitted; see ``jit_train_step``).

  With ``axis_name``, the step is the per-device body of a data-parallel step (``shard_map``
  over that mesh axis): gradients and metrics are averaged with ``pmean`` and each device draws
  the noise of its own slice of the global batch.
  """
  tx = schedules.optimizer(optim_cfg)
  sigma_schedule = schedules.pixel_sigma(optim_cfg)
  lr_schedule = schedules.learning_rate(optim_cfg)
  model_cfg = model.config
  pixels_per_image = model_cfg.image_size * model_cfg.image_size * 3

  def step_fn(state: TrainState, batch: Batch, rng: jax.Array):
    step_rng = jax.random.fold_in(rng, state.step)
    batch_size = batch["query_image"].shape[0]
    offset = 0 if axis_name is None else jax.lax.axis_index(axis_name) * batch_size
    noise = latent_noise(step_rng, model_cfg, batch_size, offset)
    sigma = sigma_schedule(state.step)

    def loss_fn(params):
      terms = elbo_terms(model, params, batch, sigma, noise)
      return jnp.mean(terms.loss), terms

    (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = {
        "loss": loss,
        "nll": jnp.mean(terms.nll),
        "kl": jnp.mean(terms.kl),
        "kl_per_step": jnp.mean(terms.kl_per_step, axis=0),
    }
    if axis_name is not None:
      grads = jax.lax.pmean(grads, axis_name)
      metrics = jax.lax.pmean(metrics, axis_name)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics.update(
        loss_nats_per_dim=metrics["loss"] / pixels_per_image,
        loss_bits_per_dim=metrics["loss"] / (pixels_per_image * LN_2),
        sigma=sigma,
        learning_rate=lr_schedule(state.step),
        grad_norm=optax.tree.norm(grads),
        # The updated parameters' norm: reading the old ones here, unordered with the in-place
        # update of their donated buffers, makes XLA copy every parameter (~0.7 GB in the paper
        # model, live for the whole step).
        param_norm=optax.tree.norm(params),
        update_norm=optax.tree.norm(updates),
    )
    new_state = TrainState(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, metrics

  return step_fn


def jit_train_step(model: GQN, optim_cfg: OptimConfig):
  """The single-device step, jitted, with the old state's buffers donated to the new one."""
  return jax.jit(make_train_step(model, optim_cfg), donate_argnums=0)


def compiled_step_memory(model: GQN, optim_cfg: OptimConfig, batch_size: int,
                         context_views: int):
  """XLA's memory accounting of the jitted step (arguments, temporaries, ...), from compiling
  it on abstract shapes: nothing is allocated or run."""
  state = jax.eval_shape(lambda: create_train_state(model, optim_cfg, jax.random.key(0)))
  batch = jax.eval_shape(lambda: dummy_batch(model.config, batch_size, context_views))
  return jit_train_step(model, optim_cfg).lower(
      state, batch, jax.random.key(1)).compile().memory_analysis()
