"""Partial-label loss: Dice plus top-k binary cross-entropy per (case, task), counted only where the task was annotated."""

from __future__ import annotations

import torch
from torch.nn import functional as F

# Fraction of voxels, the hardest ones, over which the cross-entropy of one (case, task) is averaged.
HARDEST_FRACTION = 0.1


def masked_dice_bce(
    logits: torch.Tensor,
    targets: torch.Tensor,
    annotated: torch.Tensor,
    smooth: float = 1.0,
    hardest_fraction: float = HARDEST_FRACTION,
) -> torch.Tensor:
    """Return the mean Dice + top-k BCE loss over annotated (case, task) pairs.

    logits and targets are (B, T, D, H, W); annotated is a (B, T) 0/1 tensor. A task
    that was not contoured in a case adds nothing, because its empty mask there is
    not background. Returns 0 (with a gradient path) when nothing is annotated.

    The cross-entropy is averaged over the `hardest_fraction` of voxels with the
    largest loss, not over the whole crop. A plain mean lets the many easy background
    voxels of a small organ drive its logits to about -20. There the sigmoid saturates,
    so the Dice term no longer passes a gradient. With the top-k mean, confidently
    negative voxels drop out and the organ's own voxels keep their weight.
    """
    probabilities = torch.sigmoid(logits)
    dims = tuple(range(2, logits.ndim))
    intersection = (probabilities * targets).sum(dims)
    denominator = probabilities.sum(dims) + targets.sum(dims)
    dice_loss = 1.0 - (2.0 * intersection + smooth) / (denominator + smooth)

    voxel_bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").flatten(2)
    k = max(1, int(round(hardest_fraction * voxel_bce.shape[-1])))
    bce = voxel_bce.topk(k, dim=-1, sorted=False).values.mean(-1)

    weights = annotated.to(logits.dtype)
    return ((dice_loss + bce) * weights).sum() / weights.sum().clamp(min=1.0)
