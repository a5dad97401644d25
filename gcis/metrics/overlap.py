"""Overlap metrics between binary masks."""

from __future__ import annotations

import numpy as np


def dice_score(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Return the Dice coefficient of two binary masks; 1.0 when both are empty."""
    prediction = np.asarray(prediction, dtype=bool)
    reference = np.asarray(reference, dtype=bool)
    total = prediction.sum() + reference.sum()
    if total == 0:
        return 1.0
    return float(2.0 * np.logical_and(prediction, reference).sum() / total)
