"""A PyTorch GQN written directly from the paper's description, with weights interchangeable
with gqn_jax. The description it follows is docs/architecture.md, "The paper's networks".

It exists to be compared with gqn_jax: for correctness (tests/test_torch_parity.py: same weights
and noise give the same ELBO terms and gradients) and for speed (experiments/benchmark_torch.py).
"""

from experiments.baselines.torch_gqn.convert import flax_to_torch, torch_to_flax
from experiments.baselines.torch_gqn.model import GQN
from experiments.baselines.torch_gqn.objective import ElboTerms
from experiments.baselines.torch_gqn.schedules import learning_rate, pixel_sigma
from experiments.baselines.torch_gqn.train import make_train_step

__all__ = ["GQN", "ElboTerms", "flax_to_torch", "torch_to_flax", "learning_rate", "pixel_sigma",
           "make_train_step"]
