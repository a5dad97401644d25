"""Partial-label loss: Dice pooled over the batch plus binary cross-entropy, counted only where a task was annotated."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def masked_dice_bce(
    logits: torch.Tensor,
    targets: torch.Tensor,
    annotated: torch.Tensor,
    smooth: float = 1e-5,
) -> torch.Tensor:
    """Return the Dice + BCE loss of the annotated (case, task) pairs.

    logits and targets are (B, T, D, H, W); annotated is a (B, T) 0/1 tensor. A task
    that was not contoured in a case adds nothing, because its empty mask there is
    not background. Returns 0 (with a gradient path) when nothing is annotated.

    The Dice of each task pools the voxels of all crops that annotate it ("batch
    Dice"). A crop that misses a small organ then lowers that organ's Dice only by
    its false positives, instead of scoring 0 on its own. The cross-entropy is the
    voxel mean of each annotated pair, averaged over the pairs.
    """
    weights = annotated.to(logits.dtype)
    voxel_weights = weights[:, :, None, None, None]
    probabilities = torch.sigmoid(logits) * voxel_weights
    masked_targets = targets * voxel_weights

    dims = (0, *range(2, logits.ndim))
    intersection = (probabilities * masked_targets).sum(dims)
    denominator = probabilities.sum(dims) + masked_targets.sum(dims)
    task_annotated = weights.amax(dim=0)
    dice_loss = 1.0 - (2.0 * intersection + smooth) / (denominator + smooth)
    dice = (dice_loss * task_annotated).sum() / task_annotated.sum().clamp(min=1.0)

    voxel_bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").flatten(2).mean(-1)
    bce = (voxel_bce * weights).sum() / weights.sum().clamp(min=1.0)
    return dice + bce
