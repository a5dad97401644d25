"""Partial-label loss: Dice plus binary cross-entropy per (case, task), counted only where the task was annotated."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def masked_dice_bce(
    logits: torch.Tensor, targets: torch.Tensor, annotated: torch.Tensor, smooth: float = 1.0
) -> torch.Tensor:
    """Return the mean Dice + BCE loss over annotated (case, task) pairs.

    logits and targets are (B, T, D, H, W); annotated is a (B, T) 0/1 tensor. A task
    that was not contoured in a case adds nothing, because its empty mask there is
    not background. Returns 0 (with a gradient path) when nothing is annotated.
    """
    probabilities = torch.sigmoid(logits)
    dims = tuple(range(2, logits.ndim))
    intersection = (probabilities * targets).sum(dims)
    denominator = probabilities.sum(dims) + targets.sum(dims)
    dice_loss = 1.0 - (2.0 * intersection + smooth) / (denominator + smooth)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(dims)

    weights = annotated.to(logits.dtype)
    return ((dice_loss + bce) * weights).sum() / weights.sum().clamp(min=1.0)
