"""Surface distance metrics in millimetres."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage


def hausdorff_distance_95(prediction: np.ndarray, reference: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Return the 95th percentile of symmetric surface distances (mm) between two binary masks.

    `spacing` is in array axis order. Returns 0.0 when both masks are empty and inf
    when only one is, following the usual convention.
    """
    prediction = np.asarray(prediction, dtype=bool)
    reference = np.asarray(reference, dtype=bool)
    if not prediction.any() and not reference.any():
        return 0.0
    if not prediction.any() or not reference.any():
        return math.inf

    prediction_surface = _surface(prediction)
    reference_surface = _surface(reference)
    to_reference = ndimage.distance_transform_edt(~reference_surface, sampling=spacing)
    to_prediction = ndimage.distance_transform_edt(~prediction_surface, sampling=spacing)
    distances = np.concatenate([to_reference[prediction_surface], to_prediction[reference_surface]])
    return float(np.percentile(distances, 95))


def _surface(mask: np.ndarray) -> np.ndarray:
    eroded = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1))
    return mask & ~eroded
