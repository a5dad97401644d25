"""Checks that a DICOM series forms one regular 3D CT volume that the app can segment and refer to.

:func:`series_problems` reads only the headers of the series' instances and returns one
sentence per problem. The series selector skips a series with problems and, when no series
is left, reports them. The checks run before any pixel data is decoded, because the SDK's
DICOMSeriesToVolumeOperator silently drops slices without a position and sorts the rest
without looking at gaps, duplicates or tilt.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder
from pydicom.uid import UID

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
ORIENTATIONS = ("Sagittal", "Coronal", "Axial")  # named by the patient axis (x, y, z) closest to the slice normal
# Attributes that every instance needs, with what is lost without them.
REQUIRED_ATTRIBUTES = {
    "ImagePositionPatient": "the slice positions are unknown",
    "ImageOrientationPatient": "the slice orientation is unknown",
    "PixelSpacing": "the voxel size is unknown",
    "Rows": "the image size is unknown",
    "Columns": "the image size is unknown",
    "FrameOfReferenceUID": "the SEG cannot state a frame of reference shared with the CT",
    "PixelData": "there is no image",
}

# Direction cosines in DICOM files carry about 6 decimals.
COSINE_TOLERANCE = 1e-4
# Two slices closer than this along the slice normal are duplicates (mm).
SAME_POSITION_MM = 0.01
# A gap between neighbouring slices may differ from the median gap by this fraction (at least SAME_POSITION_MM).
SPACING_TOLERANCE = 0.01
# A stack is rejected as sheared (gantry tilt) when its last slice lies this many pixels off the slice normal
# through the first slice, because every voxel of the volume would then be misplaced by up to that much.
MAX_SHEAR_PIXELS = 0.5
LISTED_EXAMPLES = 3


@dataclass(frozen=True)
class SeriesRequirements:
    """Requirements of a selected series besides the attribute rules: a slice count and a slice orientation."""

    minimum_slices: int = 10
    orientation: str | None = "Axial"

    def __post_init__(self) -> None:
        if self.orientation is not None and self.orientation.capitalize() not in ORIENTATIONS:
            raise ValueError(f"orientation {self.orientation!r} is invalid; use one of {', '.join(ORIENTATIONS)}")
        if self.minimum_slices < 2:
            raise ValueError(f"minimum_slices is {self.minimum_slices}; a volume needs at least 2 slices")


def file_name(dataset: Dataset) -> str:
    filename = getattr(dataset, "filename", None)
    return Path(filename).name if isinstance(filename, str) and filename else str(dataset.get("SOPInstanceUID", "?"))


def list_files(datasets: list[Dataset], limit: int = LISTED_EXAMPLES) -> str:
    names = [file_name(d) for d in datasets]
    listed = ", ".join(names[:limit])
    return listed if len(names) <= limit else f"{listed} and {len(names) - limit} more"


def series_problems(datasets: list[Dataset], requirements: SeriesRequirements) -> list[str]:
    """Return the reasons why the instances cannot be segmented as one volume; [] when they can."""
    problems = sop_class_problems(datasets)
    if problems:
        return problems
    if len(datasets) < requirements.minimum_slices:
        problems.append(
            f"it has {len(datasets)} slice{'s' if len(datasets) != 1 else ''}, fewer than the "
            f"{requirements.minimum_slices} that the selection rules require (minimum_slices)"
        )
    if len(datasets) < 2:
        return problems

    missing = missing_attribute_problems(datasets)
    if missing:
        return problems + missing
    problems += consistency_problems(datasets)
    if problems:
        return problems
    problems += orientation_problems(datasets, requirements.orientation)
    problems += position_problems(datasets)
    problems += transfer_syntax_problems(datasets)
    return problems


def sop_class_problems(datasets: list[Dataset]) -> list[str]:
    classes = Counter(str(d.get("SOPClassUID", "")) for d in datasets)
    problems = []
    for sop_class, count in classes.items():
        if sop_class == CT_IMAGE_STORAGE:
            continue
        name = UID(sop_class).name if sop_class else "blank"
        if sop_class == ENHANCED_CT_IMAGE_STORAGE:
            problems.append(
                f"{count} instance(s) are {name} (multi-frame), which the SDK's volume conversion does not read; "
                "export the series as single-frame CT Image Storage"
            )
        else:
            problems.append(f"{count} instance(s) have SOP class {name} ({sop_class}), not CT Image Storage")
    return problems


def missing_attribute_problems(datasets: list[Dataset]) -> list[str]:
    problems = []
    for keyword, consequence in REQUIRED_ATTRIBUTES.items():
        lacking = [d for d in datasets if d.get(keyword) in (None, "")]
        if lacking:
            problems.append(
                f"{len(lacking)} of {len(datasets)} instances lack {keyword} ({list_files(lacking)}), so {consequence}"
            )
    return problems


def consistency_problems(datasets: list[Dataset]) -> list[str]:
    """Return problems with values that must be equal in every instance of a volume."""
    problems = []
    first = datasets[0]
    for keyword in ("Rows", "Columns", "FrameOfReferenceUID"):
        differing = [d for d in datasets if d.get(keyword) != first.get(keyword)]
        if differing:
            problems.append(
                f"{keyword} differs between instances: {first.get(keyword)} in {file_name(first)}, "
                f"{differing[0].get(keyword)} in {list_files(differing)}"
            )
    for keyword, tolerance, unit in (("ImageOrientationPatient", COSINE_TOLERANCE, ""),
                                     ("PixelSpacing", 1e-3 * float(min(first.PixelSpacing)), " mm")):
        reference = np.asarray(first.get(keyword), dtype=float)
        differing = [d for d in datasets if np.abs(np.asarray(d.get(keyword), dtype=float) - reference).max() > tolerance]
        if differing:
            kind = "orientation" if keyword == "ImageOrientationPatient" else "pixel spacing"
            problems.append(
                f"inconsistent {kind} within the series: {keyword} is {list(reference)}{unit} in {file_name(first)} "
                f"but {[float(v) for v in differing[0].get(keyword)]}{unit} in {list_files(differing)}"
            )
    return problems


def slice_normal(dataset: Dataset) -> np.ndarray:
    cosines = np.asarray(dataset.ImageOrientationPatient, dtype=float)
    normal = np.cross(cosines[:3], cosines[3:])
    return normal / np.linalg.norm(normal)


def orientation_of(dataset: Dataset) -> str:
    """Return Axial, Coronal or Sagittal: the patient axis closest to the slice normal."""
    return ORIENTATIONS[int(np.argmax(np.abs(slice_normal(dataset))))]


def orientation_problems(datasets: list[Dataset], required: str | None) -> list[str]:
    cosines = np.asarray(datasets[0].ImageOrientationPatient, dtype=float)
    row, column = cosines[:3], cosines[3:]
    tolerance = 10 * COSINE_TOLERANCE
    unit = abs(np.linalg.norm(row) - 1) <= tolerance and abs(np.linalg.norm(column) - 1) <= tolerance
    if not unit or abs(np.dot(row, column)) > tolerance:
        return [f"ImageOrientationPatient {cosines.tolist()} is not a pair of orthogonal unit vectors"]
    actual = orientation_of(datasets[0])
    if required is not None and actual != required.capitalize():
        return [f"its slices are {actual.lower()}, but the selection rules ask for {required.lower()} slices"]
    return []


def position_problems(datasets: list[Dataset]) -> list[str]:
    """Return problems with the slice positions: duplicates, tilt (shear), missing slices, irregular spacing."""
    normal = slice_normal(datasets[0])
    positions = np.array([np.asarray(d.ImagePositionPatient, dtype=float) for d in datasets])
    distances = positions @ normal
    order = np.argsort(distances, kind="stable")
    ordered = [datasets[i] for i in order]
    distances = distances[order]
    positions = positions[order]

    gaps = np.diff(distances)
    duplicates = np.flatnonzero(gaps < SAME_POSITION_MM)
    if duplicates.size:
        examples = []
        for index in duplicates[:LISTED_EXAMPLES]:
            examples.append(f"{file_name(ordered[index])} and {file_name(ordered[index + 1])} "
                            f"at {distances[index]:.2f} mm")
        return [
            f"duplicate slices: {duplicates.size} pair(s) of instances share a position along the slice normal "
            f"({'; '.join(examples)}); remove the duplicates or split the acquisitions into separate folders"
        ]

    problems = []
    pixel = float(min(datasets[0].PixelSpacing))
    in_plane = positions - np.outer(distances, normal)
    shift = np.linalg.norm(in_plane - in_plane[0], axis=1)
    if shift.max() > MAX_SHEAR_PIXELS * pixel:
        extent = distances[-1] - distances[0]
        angle = np.degrees(np.arctan2(shift[-1], extent))
        tilt_tag = datasets[0].get("GantryDetectorTilt")
        tag_note = f", GantryDetectorTilt {float(tilt_tag)} degrees" if tilt_tag not in (None, "") else ""
        problems.append(
            f"gantry tilt: slice positions run at {angle:.1f} degrees to the slice normal{tag_note}, so the slices "
            "form a sheared stack; resample the series to an orthogonal grid (tilt correction) before segmenting"
        )

    step = float(np.median(gaps))
    tolerance = max(SAME_POSITION_MM, SPACING_TOLERANCE * step)
    irregular = np.flatnonzero(np.abs(gaps - step) > tolerance)
    missing, uneven = [], []
    for index in irregular:
        multiple = int(round(gaps[index] / step))
        where = (f"between {file_name(ordered[index])} ({distances[index]:.2f} mm) and "
                 f"{file_name(ordered[index + 1])} ({distances[index + 1]:.2f} mm)")
        if multiple >= 2 and abs(gaps[index] - multiple * step) <= tolerance * multiple:
            missing.append(f"{multiple - 1} slice{'s' if multiple > 2 else ''} {where}")
        else:
            uneven.append(f"{gaps[index]:.3f} mm {where}")
    if missing:
        problems.append(f"missing slices: {'; '.join(missing[:LISTED_EXAMPLES])} (slice spacing {step:.3f} mm)")
    if uneven:
        problems.append(
            f"inconsistent slice spacing: the usual gap is {step:.3f} mm but it is {'; '.join(uneven[:LISTED_EXAMPLES])}"
        )
    return problems


def transfer_syntax_problems(datasets: list[Dataset]) -> list[str]:
    """Return one problem per transfer syntax of the series that pydicom cannot decode here."""
    syntaxes: dict[str, list[Dataset]] = {}
    for dataset in datasets:
        meta = getattr(dataset, "file_meta", None)
        syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
        if syntax:
            syntaxes.setdefault(syntax, []).append(dataset)

    problems = []
    for syntax, members in syntaxes.items():
        name = f"{UID(syntax).name} ({syntax})" if UID(syntax).name != syntax else syntax
        try:
            decoder = get_decoder(syntax)
        except NotImplementedError:
            problems.append(
                f"transfer syntax {name} of {list_files(members)} cannot be decoded: pydicom {pydicom.__version__} "
                "has no pixel data decoder for it; convert the series to Explicit VR Little Endian"
            )
            continue
        if not decoder.is_available:
            problems.append(
                f"transfer syntax {name} of {list_files(members)} cannot be decoded because no decoder plugin is "
                f"installed; install one of: {'; '.join(decoder.missing_dependencies)}"
            )
    return problems
