"""Segmentation metrics: Dice, 95% Hausdorff distance, clDice and topology scores."""

from gcis.metrics.overlap import dice_score

__all__ = ["dice_score"]
