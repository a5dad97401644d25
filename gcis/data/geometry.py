"""Reading CT volumes and moving them between the input geometry and the model grid.

The model grid has a fixed voxel spacing and an identity direction, with axes along
the patient's LPS axes as in DICOM and ITK. So an input stored in any orientation
(RAS, LPS, flipped slices, oblique) reaches the network the same way.
Predictions return to the input's own grid (shape, spacing, direction, origin) by
nearest-neighbour resampling. Arrays are (z, y, x), SimpleITK's order.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

logger = logging.getLogger(__name__)

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
AIR_HU = -1024.0


@dataclass(frozen=True)
class Preprocessing:
    """Model-grid spacing (x, y, z) in mm and the HU window mapped to [0, 1]."""

    spacing: tuple[float, float, float] = (4.0, 4.0, 2.5)
    hu_min: float = -500.0
    hu_max: float = 500.0

    def to_dict(self) -> dict:
        return {"spacing": list(self.spacing), "hu_min": self.hu_min, "hu_max": self.hu_max}

    @classmethod
    def from_dict(cls, values: dict) -> "Preprocessing":
        return cls(spacing=tuple(float(s) for s in values["spacing"]), hu_min=values["hu_min"], hu_max=values["hu_max"])


class InvalidInputError(ValueError):
    """An input that is not a readable 3D CT volume in Hounsfield units."""


def read_volume(path: str | os.PathLike) -> sitk.Image:
    """Read a NIfTI, NRRD or MetaImage file, or a folder holding one DICOM series."""
    path = Path(path)
    if path.is_dir():
        return read_dicom_series(path)
    if not path.is_file():
        raise FileNotFoundError(f"input {path} not found")
    if not path.name.lower().endswith(VOLUME_SUFFIXES):
        raise InvalidInputError(
            f"input {path} has an unsupported type; give a NIfTI, NRRD or MHA file or a DICOM series folder"
        )
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise InvalidInputError(f"input {path} could not be read: {error}") from error


def read_dicom_series(folder: Path) -> sitk.Image:
    """Read the DICOM series of a folder; a folder of several series raises with their UIDs."""
    series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series_ids:
        raise InvalidInputError(f"no DICOM series found in folder {folder}")
    if len(series_ids) > 1:
        raise InvalidInputError(
            f"folder {folder} contains {len(series_ids)} DICOM series ({', '.join(series_ids)}); "
            "put one series per folder"
        )
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_ids[0])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise InvalidInputError(f"DICOM series {series_ids[0]} in {folder} could not be read: {error}") from error
    logger.info("read DICOM series %s from %s (%d slices)", series_ids[0], folder, len(files))
    return image


def check_ct(image: sitk.Image, source: str) -> None:
    """Raise InvalidInputError unless the image looks like a 3D CT in Hounsfield units."""
    if image.GetDimension() != 3 or min(image.GetSize()) < 2:
        raise InvalidInputError(
            f"{source} is not a 3D volume (size {image.GetSize()}); gCIS needs a CT volume of several slices"
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InvalidInputError(f"{source} has {image.GetNumberOfComponentsPerPixel()} components per voxel; CT has 1")
    if image.GetPixelID() in (sitk.sitkUInt8, sitk.sitkInt8):
        raise InvalidInputError(
            f"{source} has 8-bit voxels, so it cannot hold Hounsfield units; give the original CT, not an exported picture"
        )
    statistics = sitk.StatisticsImageFilter()
    statistics.Execute(image)
    low, high = statistics.GetMinimum(), statistics.GetMaximum()
    if low > -200 or high < 100:
        raise InvalidInputError(
            f"{source} has intensities {low:.0f}..{high:.0f}, which do not look like CT in Hounsfield units "
            "(air is about -1000 HU, bone above 300 HU); MR or unrescaled data is not supported"
        )


def model_grid(image: sitk.Image, spacing: tuple[float, float, float]) -> sitk.Image:
    """Return an empty image on the axis-aligned grid at `spacing` that covers the image's physical extent."""
    size = np.array(image.GetSize())
    corners = []
    for index in np.ndindex(2, 2, 2):
        corner = [float(i * (s - 1)) for i, s in zip(index, size)]
        corners.append(image.TransformContinuousIndexToPhysicalPoint(corner))
    corners = np.array(corners)
    low, high = corners.min(axis=0), corners.max(axis=0)
    spacing = np.array(spacing, dtype=float)
    new_size = np.maximum(np.round((high - low) / spacing).astype(int) + 1, 1)

    grid = sitk.Image([int(s) for s in new_size], sitk.sitkFloat32)
    grid.SetSpacing([float(s) for s in spacing])
    grid.SetOrigin([float(v) for v in low])
    grid.SetDirection(np.eye(3).flatten().tolist())
    return grid


def to_model_grid(image: sitk.Image, preprocessing: Preprocessing) -> tuple[np.ndarray, sitk.Image]:
    """Resample a CT to the model grid; return (normalised float32 array (z, y, x), grid image)."""
    grid = model_grid(image, preprocessing.spacing)
    resampled = sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear, AIR_HU, sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(resampled)
    return normalise_hu(array, preprocessing), resampled


def label_to_grid(label: sitk.Image, grid: sitk.Image) -> np.ndarray:
    """Resample a label map onto a grid by nearest neighbour; return an integer array (z, y, x)."""
    resampled = sitk.Resample(label, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, label.GetPixelID())
    return sitk.GetArrayFromImage(resampled)


def from_model_grid(array: np.ndarray, grid: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """Return a label array on the model grid resampled onto the reference image's geometry."""
    label = sitk.GetImageFromArray(array.astype(np.uint16))
    label.CopyInformation(grid)
    return sitk.Resample(label, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt16)


def normalise_hu(array: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    """Map the HU window linearly to [0, 1], clipping outside it."""
    scaled = (array.astype(np.float32) - preprocessing.hu_min) / (preprocessing.hu_max - preprocessing.hu_min)
    return np.clip(scaled, 0.0, 1.0)
