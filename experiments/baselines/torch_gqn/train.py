"""One training step of the PyTorch baseline: forward, backward, Adam with the paper's schedules.

The step is a closure over the model and its optimizer, ``step_fn(batch, step) -> metrics``,
taking the global step so that the learning rate and pixel sigma follow the schedules
(schedules.py) and a resumed run continues them. ``compile=True`` runs the loss (forward, and
through AOTAutograd the backward) under ``torch.compile``; the optimizer update stays eager.

A batch is a dict of channels-first tensors on the model's device:
  context_images [B, M, 3, H, W], context_poses [B, M, 7], context_mask [B, M] bool (optional),
  query_image [B, 3, H, W], query_pose [B, 7], noise [B, L, Z, G, G] (optional; drawn if absent).
"""

from typing import Callable, Mapping

import torch

from gqn_jax.config import OptimConfig
from experiments.baselines.torch_gqn import objective
from experiments.baselines.torch_gqn import schedules
from experiments.baselines.torch_gqn.model import GQN

Batch = Mapping[str, torch.Tensor]


def loss_and_terms(model: GQN, batch: Batch, sigma: torch.Tensor,
                   free_nats_per_step: float = 0.0):
  """The minimised loss (the batch's mean negative ELBO, with free nats if asked), and the
  per-scene terms."""
  terms = model(batch["context_images"], batch["context_poses"], batch["query_pose"],
                batch["query_image"], sigma, context_mask=batch.get("context_mask"),
                noise=batch.get("noise"))
  return objective.training_loss(terms, free_nats_per_step), terms


def make_optimizer(model: torch.nn.Module, optim: OptimConfig = OptimConfig()):
  """Adam(b1, b2, eps) as in the paper; the learning rate is set by the step function."""
  return torch.optim.Adam(model.parameters(), lr=optim.lr_initial,
                          betas=(optim.adam_b1, optim.adam_b2), eps=optim.adam_eps)


def make_train_step(model: GQN, optim: OptimConfig = OptimConfig(), compile: bool = False,
                    compile_backend: str = "inductor",
                    optimizer: torch.optim.Optimizer | None = None
                    ) -> Callable[[Batch, int], dict[str, torch.Tensor]]:
  """Returns ``train_step(batch, step) -> metrics`` (0-d tensors, detached).

  compile: run the loss under ``torch.compile(backend=compile_backend)``; the tests use the
    quick 'aot_eager' backend, the benchmark the default 'inductor' (C++ codegen on CPU).
  The optimizer (made here unless given) is reachable as ``train_step.optimizer``.
  """
  optimizer = make_optimizer(model, optim) if optimizer is None else optimizer
  loss_fn = loss_and_terms
  if compile:
    loss_fn = torch.compile(loss_and_terms, backend=compile_backend)
  device = next(model.parameters()).device

  def train_step(batch: Batch, step: int) -> dict[str, torch.Tensor]:
    model.train()
    learning_rate = schedules.learning_rate(step, optim)
    sigma = torch.tensor(schedules.pixel_sigma(step, optim), device=device)
    for group in optimizer.param_groups:
      group["lr"] = learning_rate
    optimizer.zero_grad(set_to_none=True)
    loss, terms = loss_fn(model, batch, sigma, optim.free_nats_per_step)
    loss.backward()
    if optim.grad_clip_norm > 0:
      torch.nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip_norm)
    optimizer.step()
    return {"loss": terms.loss.detach().mean(), "nll": terms.nll.detach().mean(),
            "kl": terms.kl.detach().mean(), "learning_rate": torch.tensor(learning_rate),
            "sigma": sigma}

  train_step.optimizer = optimizer
  return train_step
