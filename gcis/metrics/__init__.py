"""Segmentation metrics: Dice, 95% Hausdorff distance, clDice and topology scores."""

from gcis.metrics.distance import hausdorff_distance_95
from gcis.metrics.evaluation import evaluate_case, summarise
from gcis.metrics.overlap import dice_score
from gcis.metrics.topology import topology_scores

__all__ = ["dice_score", "evaluate_case", "hausdorff_distance_95", "summarise", "topology_scores"]
