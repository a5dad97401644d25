"""How the sliding window merges overlapping windows into one label map."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gcis.inference.sliding_window import predict_label_map

ROI = (8, 8, 64)


def two_window_predictor(first: float, second: float):
    """Return a predictor whose first window has probability `first` everywhere and its second `second`."""
    calls = []

    def predict(windows: torch.Tensor) -> torch.Tensor:
        probability = first if not calls else second
        calls.append(1)
        return torch.full((windows.shape[0], 1, *windows.shape[2:]), float(torch.logit(torch.tensor(probability))))

    return predict


def labelled_columns(labels: np.ndarray) -> list[int]:
    return [x for x in range(labels.shape[2]) if labels[:, :, x].all()]


def test_central_blend_takes_nearer_window():
    # Windows start at x = 0 and x = 32. The first is more central up to x = 47.
    volume = np.zeros((8, 8, 96), np.float32)
    labels = predict_label_map(two_window_predictor(0.9, 0.0), volume, [5], ROI, overlap=0.5, batch_size=1)

    assert labelled_columns(labels) == list(range(48))
    assert set(np.unique(labels)) == {0, 5}


def test_weighted_blend_averages_probabilities():
    # In the overlap the two weights sum to 1. So 0.9 * (63.5 - x) / 32 > 0.5 up to x = 45.
    volume = np.zeros((8, 8, 96), np.float32)
    predictor = two_window_predictor(0.9, 0.0)
    labels = predict_label_map(predictor, volume, [5], ROI, overlap=0.5, batch_size=1, blend="weighted")

    assert labelled_columns(labels) == list(range(46))


def test_blends_agree_without_overlap():
    volume = np.random.default_rng(0).normal(size=(8, 8, 128)).astype(np.float32)

    def by_intensity(windows: torch.Tensor) -> torch.Tensor:
        return torch.cat([windows * 4.0, -windows * 4.0], dim=1)

    central = predict_label_map(by_intensity, volume, [1, 2], ROI, overlap=0.0)
    weighted = predict_label_map(by_intensity, volume, [1, 2], ROI, overlap=0.0, blend="weighted")
    assert np.array_equal(central, weighted)


def test_unknown_blend_rejected():
    with pytest.raises(ValueError, match="'mean'"):
        predict_label_map(two_window_predictor(0.9, 0.0), np.zeros((8, 8, 64), np.float32), [1], ROI, blend="mean")
