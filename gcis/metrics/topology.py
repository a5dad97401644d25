"""Centreline metrics for tubular structures (Shit et al., "clDice", CVPR 2021).

Topology precision is the share of the predicted skeleton that lies inside the
reference mask. Topology sensitivity is the share of the reference skeleton that lies
inside the predicted mask, and clDice is their harmonic mean.
"""

from __future__ import annotations

import numpy as np
from skimage.morphology import skeletonize


def skeleton(mask: np.ndarray) -> np.ndarray:
    """Return the 3D skeleton (boolean) of a binary mask."""
    return skeletonize(np.asarray(mask, dtype=bool)).astype(bool)


def topology_scores(prediction: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Return clDice, topology precision and topology sensitivity of two binary masks.

    When both masks are empty all three are 1.0; when only one is empty they are 0.0.
    """
    prediction = np.asarray(prediction, dtype=bool)
    reference = np.asarray(reference, dtype=bool)
    if not prediction.any() and not reference.any():
        return {"cldice": 1.0, "topology_precision": 1.0, "topology_sensitivity": 1.0}
    if not prediction.any() or not reference.any():
        return {"cldice": 0.0, "topology_precision": 0.0, "topology_sensitivity": 0.0}

    predicted_skeleton = skeleton(prediction)
    reference_skeleton = skeleton(reference)
    precision = _share_inside(predicted_skeleton, reference)
    sensitivity = _share_inside(reference_skeleton, prediction)
    total = precision + sensitivity
    cldice = 2.0 * precision * sensitivity / total if total > 0 else 0.0
    return {"cldice": cldice, "topology_precision": precision, "topology_sensitivity": sensitivity}


def _share_inside(skeleton_mask: np.ndarray, mask: np.ndarray) -> float:
    count = skeleton_mask.sum()
    if count == 0:
        # An empty skeleton of a non-empty mask is degenerate: count it as no agreement.
        return 0.0
    return float(np.logical_and(skeleton_mask, mask).sum() / count)
