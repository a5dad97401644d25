"""Multi-task sliding-window inference into one label map.

Two ways to merge overlapping windows, both built on a separable triangular weight
that is largest at a window's centre, where the network has the most context:
- "central" (the default): each voxel takes the label of the window in which it lies
  most centrally. Per voxel only the best weight so far and the label are stored, so
  memory is two volumes plus one window batch's logits, whatever the number of tasks.
- "weighted": each task's probability is averaged over the windows that cover a
  voxel, weighted by that triangular weight. Memory grows by one volume per task.
Either way the label is the task of highest probability above the threshold, or 0.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import torch
from torch.nn import functional as F

logger = logging.getLogger(__name__)

# Windows per network call. With a batch of one window, PyTorch 2.14 runs several of
# the decoder's small 3D convolutions on its native CPU kernel instead of oneDNN. On a
# 2-core x86-64 CPU one task then took 2.4 times as long per window as with two windows
# (benchmarks/window_costs.py).
DEFAULT_WINDOW_BATCH = 2

BLEND_MODES = ("central", "weighted")


def window_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Return window start positions along one axis of `size` voxels (size >= roi)."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"invalid window overlap {overlap}: give a fraction of the window in [0, 1)")
    if size <= roi:
        return [0]
    step = max(1, int(round(roi * (1.0 - overlap))))
    starts = list(range(0, size - roi, step))
    starts.append(size - roi)
    return sorted(set(starts))


def centrality_weight(roi: tuple[int, int, int]) -> torch.Tensor:
    """Return a (D, H, W) weight that is largest at the window centre and positive everywhere."""
    profiles = []
    for n in roi:
        position = torch.arange(n, dtype=torch.float32) + 0.5
        profiles.append(torch.minimum(position, n - position) / (n / 2.0))
    return profiles[0][:, None, None] * profiles[1][None, :, None] * profiles[2][None, None, :]


def _pad_to_window(volume: np.ndarray | torch.Tensor, roi_size: tuple[int, int, int]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Return the volume as float32, zero-padded at the far end of each axis shorter than the window, and its original shape."""
    volume = torch.as_tensor(volume, dtype=torch.float32)
    padding = []
    for size, roi in zip(reversed(volume.shape), reversed(roi_size)):
        padding.extend([0, max(0, roi - size)])
    return F.pad(volume, padding, value=0.0), tuple(volume.shape)


def _window_batches(padded: torch.Tensor, roi_size: tuple[int, int, int], overlap: float, batch_size: int):
    """Yield (regions, windows, done, total) for each batch of windows that tile the padded volume."""
    axes = (window_starts(s, r, overlap) for s, r in zip(padded.shape, roi_size))
    starts = list(itertools.product(*axes))
    total = len(starts)
    for first in range(0, total, batch_size):
        regions = [
            (slice(z, z + roi_size[0]), slice(y, y + roi_size[1]), slice(x, x + roi_size[2]))
            for z, y, x in starts[first : first + batch_size]
        ]
        windows = torch.stack([padded[region] for region in regions])
        yield regions, windows[:, None], min(first + batch_size, total), total


@torch.inference_mode()
def predict_probabilities(
    predictor,
    volume: np.ndarray | torch.Tensor,
    roi_size: tuple[int, int, int],
    overlap: float = 0.25,
    batch_size: int = DEFAULT_WINDOW_BATCH,
    device: str | torch.device = "cpu",
    progress=None,
) -> torch.Tensor:
    """Return each task's probability (T, D, H, W), averaged over the windows weighted by centrality.

    `predictor` and `progress` are as for `predict_label_map`. Memory is one volume per task.
    """
    padded, original_shape = _pad_to_window(volume, roi_size)
    weight = centrality_weight(roi_size)
    weighted_sum = None
    weight_sum = torch.zeros(padded.shape, dtype=torch.float32)

    for regions, windows, done, total in _window_batches(padded, roi_size, overlap, batch_size):
        probabilities = torch.sigmoid(predictor(windows.to(device)).float().cpu())
        if weighted_sum is None:
            weighted_sum = torch.zeros((probabilities.shape[1], *padded.shape), dtype=torch.float32)
        for region, window_probabilities in zip(regions, probabilities):
            weighted_sum[(slice(None), *region)] += window_probabilities * weight
            weight_sum[region] += weight
        if progress is not None:
            progress(done, total)

    # Every voxel lies in at least one window, and the weight is positive everywhere in a window.
    crop = tuple(slice(0, s) for s in original_shape)
    return (weighted_sum / weight_sum)[(slice(None), *crop)]


def label_probabilities(probabilities: torch.Tensor, label_ids: list[int], threshold: float = 0.5) -> np.ndarray:
    """Return the label map of task probabilities (T, D, H, W): the most probable task above the threshold, else 0."""
    ids = torch.tensor([0] + list(label_ids), dtype=torch.int32)
    best_probability, best_task = probabilities.max(dim=0)
    return torch.where(best_probability > threshold, ids[best_task + 1], ids[0]).numpy()


@torch.inference_mode()
def predict_label_map(
    predictor,
    volume: np.ndarray | torch.Tensor,
    label_ids: list[int],
    roi_size: tuple[int, int, int],
    overlap: float = 0.25,
    batch_size: int = DEFAULT_WINDOW_BATCH,
    threshold: float = 0.5,
    device: str | torch.device = "cpu",
    progress=None,
    blend: str = "central",
) -> np.ndarray:
    """Segment a normalised volume (D, H, W) into a label map of `label_ids`.

    `predictor(windows)` maps a batch (B, 1, *roi_size) to logits (B, T, *roi_size)
    with T == len(label_ids). `progress`, if given, is called with (done, total)
    after each batch of windows. `blend` is one of BLEND_MODES (see the module doc).
    """
    if blend not in BLEND_MODES:
        raise ValueError(f"invalid blend mode {blend!r}. Use one of {', '.join(BLEND_MODES)}")
    if blend == "weighted":
        probabilities = predict_probabilities(predictor, volume, roi_size, overlap, batch_size, device, progress)
        return label_probabilities(probabilities, label_ids, threshold)

    padded, original_shape = _pad_to_window(volume, roi_size)
    weight = centrality_weight(roi_size)
    ids = torch.tensor([0] + list(label_ids), dtype=torch.int32)
    labels = torch.zeros(padded.shape, dtype=torch.int32)
    best_weight = torch.zeros(padded.shape, dtype=torch.float32)

    for regions, windows, done, total in _window_batches(padded, roi_size, overlap, batch_size):
        probabilities = torch.sigmoid(predictor(windows.to(device)).float().cpu())
        best_probability, best_task = probabilities.max(dim=1)
        window_labels = torch.where(best_probability > threshold, ids[best_task + 1], ids[0])
        for region, window_label in zip(regions, window_labels):
            closer = weight > best_weight[region]
            labels[region] = torch.where(closer, window_label, labels[region])
            best_weight[region] = torch.where(closer, weight, best_weight[region])
        if progress is not None:
            progress(done, total)

    crop = tuple(slice(0, s) for s in original_shape)
    return labels[crop].numpy()
