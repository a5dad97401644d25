"""Check a label map that a client saves and rewrite it in catalogue ids on the image's grid.

Clients send label maps in two forms:

- values that already are catalogue task ids (what this app's infer tasks return), or
- values of the client's own segment list, named by ``label_info`` in the request parameters,
  ``[{"name": "Liver", "idx": 1}, ...]`` as 3D Slicer's MONAI Label module sends it. Each name
  is looked up in the catalogue by name or synonym.

OHIF sends a raw ``.bin`` buffer of uint8 voxels in the image's voxel order (x fastest).

A saved label may cover only some structures (partial labels). The structures it annotates are
those with voxels, those named in ``label_info`` and those listed in an optional
``annotated`` parameter (task names), so an annotator can state that a structure was checked
and is absent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from gcis.catalogue import TaskCatalogue

logger = logging.getLogger(__name__)

INTEGER_PIXEL_TYPES = {
    sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16, sitk.sitkUInt32, sitk.sitkInt32,
    sitk.sitkUInt64, sitk.sitkInt64,
}
# Grids match when every corner voxel centre agrees within this fraction of the smallest spacing.
GRID_TOLERANCE = 0.01


class LabelError(ValueError):
    """A label file that cannot be stored: unreadable, on another grid, or with unknown values."""


@dataclass
class CheckedLabel:
    """A label map on the image's grid with catalogue ids as values, and the tasks it annotates."""

    image: sitk.Image
    labels: dict[int, str]
    annotated: list[str]

    def info(self) -> dict:
        """Return the fields stored with the label in the datastore."""
        return {
            "label_names": {name: value for value, name in sorted(self.labels.items())},
            "annotated": list(self.annotated),
        }


def read_label_file(path: str | Path, reference: sitk.Image) -> sitk.Image:
    """Read a label upload: any SimpleITK format, or OHIF's raw uint8 ``.bin`` voxel buffer."""
    path = Path(path)
    if path.name.endswith(".bin"):
        expected = int(np.prod(reference.GetSize()))
        data = np.fromfile(path, dtype=np.uint8)
        if data.size != expected:
            raise LabelError(
                f"label buffer has {data.size} voxels but the image has {expected} "
                f"({'x'.join(map(str, reference.GetSize()))}); send the label of this image"
            )
        # The buffer is x-fastest, which is SimpleITK's (z, y, x) array in C order.
        label = sitk.GetImageFromArray(data.reshape(tuple(reversed(reference.GetSize()))))
        label.CopyInformation(reference)
        return label
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise LabelError("label file could not be read as an image; send a NIfTI, NRRD or MHA label map") from error


def align_to_image(label: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """Return the label on the reference grid, or raise LabelError when the voxel grids differ.

    A label stored in another axis order or direction (RAS and LPS NIfTI, a flipped y axis)
    has the same voxel centres, so nearest-neighbour resampling moves every voxel exactly.
    """
    if label.GetDimension() != 3 or label.GetNumberOfComponentsPerPixel() != 1:
        raise LabelError(
            f"label has {label.GetDimension()} dimensions and {label.GetNumberOfComponentsPerPixel()} "
            "components per voxel; send a 3D label map with one value per voxel"
        )
    if label.GetPixelID() not in INTEGER_PIXEL_TYPES:
        raise LabelError(f"label voxels are {label.GetPixelIDTypeAsString()}; send integer label values")
    if not _same_grid(label, reference):
        raise LabelError(
            f"label grid (size {label.GetSize()}, spacing {_rounded(label.GetSpacing())}, origin "
            f"{_rounded(label.GetOrigin())}) does not match the image grid (size {reference.GetSize()}, spacing "
            f"{_rounded(reference.GetSpacing())}, origin {_rounded(reference.GetOrigin())}); "
            "send a label map of this image"
        )
    return sitk.Resample(label, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, label.GetPixelID())


def check_label(
    path: str | Path,
    reference: sitk.Image,
    catalogue: TaskCatalogue,
    label_info: list[dict] | None = None,
    annotated: list[str] | None = None,
) -> CheckedLabel:
    """Read, align and relabel an uploaded label map; raise LabelError with the reason when it is invalid."""
    label = align_to_image(read_label_file(path, reference), reference)
    values = sitk.GetArrayFromImage(label)
    if values.min() < 0:
        raise LabelError(f"label has negative values ({int(values.min())}); background is 0 and structures are positive")
    present = sorted(int(v) for v in np.unique(values) if v != 0)

    value_to_id = _value_to_task_id(present, catalogue, label_info)
    lookup = np.zeros(max([0, *present]) + 1, dtype=np.uint16)
    for value, task_id in value_to_id.items():
        lookup[value] = task_id
    relabelled = lookup[values]

    ids = sorted(set(value_to_id.values()))
    declared = [catalogue.get(task_id).name for task_id in ids]
    for entry in label_info or []:
        declared.append(catalogue.find_exact(str(entry["name"])).name)
    for name in annotated or []:
        task = catalogue.find_exact(str(name))
        if task is None:
            raise LabelError(f"annotated structure {name!r} is not in the task catalogue; "
                             f"closest: {', '.join(t.name for t in catalogue.closest(str(name)))}")
        declared.append(task.name)
    annotated_names = sorted(set(declared), key=lambda name: catalogue.get(name).id)

    dtype = np.uint8 if max([0, *ids]) <= np.iinfo(np.uint8).max else np.uint16
    image = sitk.GetImageFromArray(relabelled.astype(dtype))
    image.CopyInformation(reference)
    labels = {catalogue.get(name).id: name for name in annotated_names}
    return CheckedLabel(image=image, labels=labels, annotated=annotated_names)


def _value_to_task_id(present: list[int], catalogue: TaskCatalogue, label_info: list[dict] | None) -> dict[int, int]:
    """Map each label value to a catalogue id, through label_info names when the client sent them."""
    if not label_info:
        unknown = [v for v in present if v not in catalogue]
        if unknown:
            raise LabelError(
                f"label values {unknown} are not catalogue task ids; send catalogue ids as values "
                "or name each value in label_info ([{\"name\": ..., \"idx\": ...}])"
            )
        return {v: v for v in present}

    named: dict[int, int] = {}
    for entry in label_info:
        if not isinstance(entry, dict) or "name" not in entry or "idx" not in entry:
            raise LabelError(f"label_info entry {entry!r} is invalid; each entry needs 'name' and 'idx'")
        task = catalogue.find_exact(str(entry["name"]))
        if task is None:
            close = ", ".join(t.name for t in catalogue.closest(str(entry["name"])))
            raise LabelError(f"segment name {entry['name']!r} is not in the task catalogue; closest: {close or 'none'}")
        try:
            named[int(entry["idx"])] = task.id
        except (TypeError, ValueError) as error:
            raise LabelError(f"label_info entry {entry!r} has a non-integer idx") from error
    unnamed = [v for v in present if v not in named]
    if unnamed:
        raise LabelError(f"label values {unnamed} have no entry in label_info; name every value that the label map uses")
    return {v: named[v] for v in present}


def _corners(image: sitk.Image) -> np.ndarray:
    size = image.GetSize()
    points = [
        image.TransformIndexToPhysicalPoint([int(i * (s - 1)) for i, s in zip(index, size)])
        for index in np.ndindex(2, 2, 2)
    ]
    return np.array(points)


def _same_grid(label: sitk.Image, reference: sitk.Image) -> bool:
    """Return True when both images have the same voxel centres, in any axis order or direction.

    The corner voxel centres must coincide, and the axes must pair up with equal sizes and
    spacings; together these fix every voxel centre.
    """
    tolerance = GRID_TOLERANCE * min(reference.GetSpacing())
    axes = sorted(zip(label.GetSize(), label.GetSpacing()))
    reference_axes = sorted(zip(reference.GetSize(), reference.GetSpacing()))
    for (size, spacing), (reference_size, reference_spacing) in zip(axes, reference_axes):
        if size != reference_size or abs(spacing - reference_spacing) > tolerance:
            return False
    distances = np.linalg.norm(_corners(label)[:, None, :] - _corners(reference)[None, :, :], axis=-1)
    return bool(distances.min(axis=1).max() <= tolerance and distances.min(axis=0).max() <= tolerance)


def _rounded(values) -> tuple:
    return tuple(round(float(v), 3) for v in values)
