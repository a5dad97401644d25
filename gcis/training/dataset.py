"""Training volumes cached on the model grid, and the random crops drawn from them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from gcis.data.datalist import Case
from gcis.data.geometry import Preprocessing, label_to_grid, to_model_grid

logger = logging.getLogger(__name__)


@dataclass
class CachedCase:
    """One case on the model grid: normalised image (D, H, W) float32, label map (D, H, W) int16."""

    case_id: str
    image: np.ndarray
    label: np.ndarray
    labels: dict[int, str]
    annotated: list[str]
    weight: float = 1.0

    def task_value(self, task: str) -> int:
        return next(value for value, name in self.labels.items() if name == task)


def cache_case(case: Case, preprocessing: Preprocessing) -> CachedCase:
    """Resample one case's image and label map to the model grid."""
    image = sitk.ReadImage(str(case.image))
    label = sitk.ReadImage(str(case.label))
    array, grid = to_model_grid(image, preprocessing)
    label_array = label_to_grid(label, grid).astype(np.int16)

    present = {int(v) for v in np.unique(label_array)}
    annotated = case.annotated
    if annotated is None:
        annotated = [name for value, name in case.labels.items() if value in present]
    return CachedCase(case.case_id, array.astype(np.float32), label_array, case.labels, list(annotated), case.weight)


class CropSampler:
    """Draw training crops: most centred on a voxel of an annotated task, the rest uniformly placed.

    Uniform crops teach the network the background of the whole field of view, and
    structure-centred crops make sure that small structures appear often.
    """

    def __init__(
        self,
        roi_size: tuple[int, int, int],
        foreground_fraction: float = 2 / 3,
        seed: int = 0,
        task_weights: dict[str, float] | None = None,
    ):
        self.roi_size = tuple(roi_size)
        self.foreground_fraction = foreground_fraction
        self.task_weights = dict(task_weights or {})
        self.rng = np.random.default_rng(seed)

    def sample(self, case: CachedCase) -> tuple[np.ndarray, np.ndarray]:
        """Return (image crop, label crop), each of roi_size, padded with air / 0 where the case is smaller."""
        image, label, _ = self.draw(case)
        return image, label

    def draw(self, case: CachedCase) -> tuple[np.ndarray, np.ndarray, str | None]:
        """Return (image crop, label crop, task the crop is centred on, or None for a uniform crop).

        An organ-centred crop picks its task among the case's annotated tasks with a chance
        proportional to its task weight (1 unless set).
        """
        centre = None
        task = None
        if case.annotated and self.rng.random() < self.foreground_fraction:
            if self.task_weights:
                weights = np.array([self.task_weights.get(t, 1.0) for t in case.annotated], dtype=float)
                task = case.annotated[self.rng.choice(len(case.annotated), p=weights / weights.sum())]
            else:
                # The unweighted draw keeps the random stream of runs made before task weights existed.
                task = case.annotated[self.rng.integers(len(case.annotated))]
            voxels = np.argwhere(case.label == case.task_value(task))
            if len(voxels):
                centre = voxels[self.rng.integers(len(voxels))]
            else:
                task = None
        if centre is None:
            centre = np.array([self.rng.integers(s) for s in case.image.shape])

        image = np.zeros(self.roi_size, dtype=np.float32)
        label = np.zeros(self.roi_size, dtype=np.int16)
        source, target = [], []
        for c, size, roi in zip(centre, case.image.shape, self.roi_size):
            start = int(np.clip(c - roi // 2, 0, max(size - roi, 0))) if size >= roi else 0
            length = min(roi, size)
            offset = (roi - length) // 2 if size < roi else 0
            source.append(slice(start, start + length))
            target.append(slice(offset, offset + length))
        image[tuple(target)] = case.image[tuple(source)]
        label[tuple(target)] = case.label[tuple(source)]
        return self.augment(image), label, task

    def augment(self, image: np.ndarray) -> np.ndarray:
        """Random intensity scale and shift. No flips: they would swap left and right structures."""
        scale = self.rng.uniform(0.9, 1.1)
        shift = self.rng.uniform(-0.05, 0.05)
        return (image * scale + shift).astype(np.float32)
