"""How the sliding window merges overlapping windows into one label map."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gcis.inference.sliding_window import label_probabilities, predict_label_map, predict_probabilities

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


def test_probabilities_keep_input_shape():
    # 60 columns are padded to one 64-column window, and the padding is cropped again.
    volume = np.zeros((8, 8, 60), np.float32)
    probabilities = predict_probabilities(two_window_predictor(0.8, 0.8), volume, ROI)

    assert probabilities.shape == (1, 8, 8, 60)
    assert torch.allclose(probabilities, torch.tensor(0.8))


def test_probabilities_average_overlap():
    # Where the windows overlap (x = 32 to 63), their weights sum to 1 at every column.
    volume = np.zeros((8, 8, 96), np.float32)
    probabilities = predict_probabilities(two_window_predictor(0.9, 0.1), volume, ROI, overlap=0.5, batch_size=1)

    assert torch.allclose(probabilities[0, 0, 0, :32], torch.tensor(0.9))
    assert torch.allclose(probabilities[0, 0, 0, 64:], torch.tensor(0.1))
    assert torch.allclose(probabilities[0, 0, 0, 48], torch.tensor(0.5), atol=0.02)


def test_label_probabilities_most_probable_task():
    probabilities = torch.tensor([[0.2, 0.7, 0.6], [0.4, 0.6, 0.9]])[:, :, None, None]
    labels = label_probabilities(probabilities, [3, 8], threshold=0.5)

    assert labels[:, 0, 0].tolist() == [0, 3, 8]


@pytest.mark.parametrize("overlap", [-0.5, 1.0, 1.5])
def test_invalid_overlap_rejected(overlap):
    with pytest.raises(ValueError, match="invalid window overlap"):
        predict_label_map(two_window_predictor(0.9, 0.0), np.zeros((8, 8, 96), np.float32), [1], ROI, overlap=overlap)
