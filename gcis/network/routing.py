"""Prompt-driven routing: one fully connected layer per AP module scores its sub-pathways.

Training method: straight-through Gumbel-softmax (Jang et al., 2017, "Categorical
Reparameterization with Gumbel-Softmax"). The forward pass takes one sub-pathway per
task, the highest of (logits + noise_scale * Gumbel noise), so training runs the same
hard choice that inference makes and only the chosen sub-pathway is computed. The
backward pass gives the router the gradient of the soft probability of the chosen
sub-pathway. A load-balance term over all trained prompts (the Switch Transformer
form, Fedus et al., 2022) keeps the routers from sending every task down one
sub-pathway. The noise scale is a training setting: 1 explores routes, 0 trains each
task's current route only. At inference the highest-scoring sub-pathway is taken,
with no noise, so routing is a deterministic function of the prompt embedding.

NOTE: with full noise from the start, a 2-core CPU run of the small preset still
predicted no foreground after 320 steps, so the shipped weights train with noise 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class Routes:
    """Sub-pathway choices of T tasks through the AP modules.

    `indices` is a LongTensor (T, modules). `gates` is None at inference. In training
    it is a float tensor (T, modules) whose values are exactly 1.0 but whose gradient
    reaches the router logits (the straight-through estimator).
    """

    indices: torch.Tensor
    gates: torch.Tensor | None = None

    def prefix(self, task: int, length: int) -> tuple[int, ...]:
        return tuple(int(i) for i in self.indices[task, :length])


class Router(nn.Module):
    """Fully connected routing layer of one AP module: prompt embedding (T, D) to logits (T, M)."""

    def __init__(self, prompt_dim: int, sub_pathways: int):
        super().__init__()
        self.linear = nn.Linear(prompt_dim, sub_pathways)

    def forward(self, prompts: torch.Tensor) -> torch.Tensor:
        return self.linear(prompts)


def select_hard(logits: torch.Tensor) -> torch.Tensor:
    """Return the index of the highest-scoring sub-pathway for each row of logits (T, M)."""
    return logits.argmax(dim=-1)


def sample_straight_through(
    logits: torch.Tensor, tau: float, noise_scale: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one sub-pathway per row with Gumbel noise; return (indices, gates).

    The soft probabilities are softmax((logits + noise_scale * g) / tau) for Gumbel
    noise g; noise_scale 0 turns the draw into the inference choice. The gate is
    (p - p.detach()) + 1 for the soft probability p of the chosen sub-pathway:
    exactly 1.0 in the forward pass, with the gradient of p.
    """
    gumbel = -torch.empty_like(logits).exponential_().log()
    soft = ((logits + noise_scale * gumbel) / tau).softmax(dim=-1)
    indices = soft.argmax(dim=-1)
    chosen = soft.gather(-1, indices.unsqueeze(-1)).squeeze(-1)
    gates = (chosen - chosen.detach()) + 1.0
    return indices, gates


def balance_loss(logits: torch.Tensor) -> torch.Tensor:
    """Return the Switch load-balance term M * sum_j f_j * P_j for logits (T, M).

    f_j is the fraction of the T prompts whose hard choice is sub-pathway j and P_j
    their mean softmax probability for j. It equals 1.0 when use is uniform and
    grows to M when all prompts take one sub-pathway.
    """
    num_pathways = logits.shape[-1]
    probabilities = logits.softmax(dim=-1)
    fraction = F.one_hot(select_hard(logits), num_pathways).float().mean(dim=0)
    return num_pathways * (fraction * probabilities.mean(dim=0)).sum()


def routing_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Return the entropy (nats) of each prompt's routing distribution, shape (T,)."""
    log_p = logits.log_softmax(dim=-1)
    return -(log_p.exp() * log_p).sum(dim=-1)
