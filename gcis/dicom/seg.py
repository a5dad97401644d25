"""DICOM SEG of catalogue-id label maps, written and read with highdicom.

Every front that writes or reads a SEG calls this module: the MONAI Deploy app writes its
result, and the MONAI Label app stores and reads back annotators' labels.

Two segmentation types are written:

- LABELMAP (Labelmap Segmentation Storage, DICOM 2024c, highdicom >= 0.24, the default)
  stores the label map as is. Each pixel value is the segment number, and the segment number
  is the catalogue task id. Pixels are 8-bit while every id is below 256 and 16-bit otherwise
  (highdicom picks the smallest unsigned type that fits the largest segment number), so ids
  never wrap. An id above 65535 raises ValueError.
- BINARY (Segmentation Storage) needs segment numbers 1..N. Segments are numbered in order of
  ascending catalogue id.

In both types each segment carries the catalogue display name as Segment Label, the task name
as Tracking ID and the catalogue name and id in its Segment Description (0062,0006). Its
property category and type are the catalogue's SNOMED CT codes, with the laterality as a
Segmented Property Type Modifier where the catalogue gives one, and its display colour is the
catalogue colour. A segment written by an algorithm carries its identification (name gCIS,
family Artificial Intelligence, version, parameters). Any other segment is MANUAL.

Reading maps segments back to catalogue tasks by their codes, so SEGs made by other tools
(OHIF, 3D Slicer) are understood when they use the same SNOMED CT concepts. A segment with
unknown codes is matched by its Segment Label instead, and skipped with a warning when that is
unknown too.

Frames are paired with source instances by Image Position (Patient), never by the order of
the datasets or files.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import highdicom as hd
import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

import gcis
from gcis.catalogue import Task, TaskCatalogue

logger = logging.getLogger(__name__)

ALGORITHM_NAME = "gCIS"
MANUFACTURER = "gCIS project"
SERIES_DESCRIPTION = "gCIS AI segmentation - not for clinical use"
CONTENT_LABEL = "GCIS"
# The SEG series number is the source series number plus this offset (or the offset alone).
SERIES_NUMBER_OFFSET = 1000
LONG_STRING_MAX = 64  # DICOM VR LO, the VR of Segment Label
# Max distance (mm), within the slice plane, between a source instance's Image Position (Patient)
# and the first voxel of the label map slice that the instance lies on.
IN_PLANE_TOLERANCE_MM = 0.01
# Max distance along the slice normal, as a fraction of the slice spacing (at least
# IN_PLANE_TOLERANCE_MM). It is larger because ITK 5.4 places slice k at the first slice's position
# plus k times the mean slice spacing, so instances of a series with uneven gaps sit off their slice.
THROUGH_PLANE_TOLERANCE = 0.1
MODIFIER_KEYWORD = "SegmentedPropertyTypeModifierCodeSequence"


@dataclass(frozen=True)
class AlgorithmInfo:
    """The identification of the algorithm that produced a SEG's segments."""

    version: str
    parameters: dict[str, str] = field(default_factory=dict)

    def identification(self) -> hd.AlgorithmIdentificationSequence:
        return hd.AlgorithmIdentificationSequence(
            name=ALGORITHM_NAME,
            family=codes.cid7162.ArtificialIntelligence,
            version=self.version,
            parameters=self.parameters or None,
        )


def coded_concept(concept: dict) -> hd.sr.CodedConcept:
    """Return a catalogue {code, scheme, meaning} object as a highdicom coded concept."""
    return hd.sr.CodedConcept(value=concept["code"], scheme_designator=concept["scheme"], meaning=concept["meaning"])


def segment_description(
    task: Task, segment_number: int, algorithm: AlgorithmInfo | None = None
) -> hd.seg.SegmentDescription:
    """Describe one catalogue task as a SEG segment, AUTOMATIC with `algorithm` and MANUAL without.

    Raises ValueError for a display name longer than the 64 characters of a Segment Label.
    """
    label = task.display_name
    if len(label) > LONG_STRING_MAX:
        raise ValueError(
            f"catalogue task {task.name} (id {task.id}) has display name {label!r} of {len(label)} characters; "
            f"a Segment Label has at most {LONG_STRING_MAX}, so shorten its first synonym in the catalogue"
        )
    if algorithm is None:
        algorithm_type, identification = hd.seg.SegmentAlgorithmTypeValues.MANUAL, None
    else:
        algorithm_type, identification = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm.identification()
    description = hd.seg.SegmentDescription(
        segment_number=segment_number,
        segment_label=label,
        segmented_property_category=coded_concept(task.snomed["property_category"]),
        segmented_property_type=coded_concept(task.snomed["property_type"]),
        algorithm_type=algorithm_type,
        algorithm_identification=identification,
        tracking_id=task.name,
        tracking_uid=hd.UID(),
        display_color=hd.color.CIELabColor.from_rgb(*task.color),
    )
    laterality = task.snomed.get("laterality")
    if laterality:
        # The modifier belongs inside the property type's code item (DICOM PS3.3 Segment Description
        # Macro). highdicom 0.28 has no argument for it, so it is set on that item directly.
        property_type = description.SegmentedPropertyTypeCodeSequence[0]
        setattr(property_type, MODIFIER_KEYWORD, [coded_concept(laterality)])
    description.SegmentDescription = f"gCIS task {task.name}, catalogue id {task.id}"
    return description


def task_of_segment(description: Dataset, catalogue: TaskCatalogue) -> Task | None:
    """Return the catalogue task of a segment: by property type and laterality codes, else by Segment Label.

    The laterality is read from inside the property type's code item, where the standard puts
    it, or else from the segment item itself, where the first SEGs of the gCIS MONAI Label app
    put it.
    """
    property_type = description.SegmentedPropertyTypeCodeSequence[0]
    modifiers = property_type.get(MODIFIER_KEYWORD) or description.get(MODIFIER_KEYWORD) or []
    laterality = next((str(item.CodeValue) for item in modifiers), None)
    for task in catalogue:
        task_laterality = (task.snomed.get("laterality") or {}).get("code")
        if task.snomed["property_type"]["code"] == str(property_type.CodeValue) and task_laterality == laterality:
            return task
    return catalogue.find_exact(str(description.SegmentLabel))


def slice_indices(datasets: Sequence[Dataset], reference: sitk.Image) -> list[int]:
    """Return, for each source instance, the index of the reference image's slice that it lies on.

    Raises ValueError naming the instance when its Image Position (Patient) is outside the
    slice tolerances (IN_PLANE_TOLERANCE_MM, THROUGH_PLANE_TOLERANCE) of every slice.
    """
    depth = reference.GetSize()[2]
    normal = np.asarray(reference.GetDirection(), dtype=float).reshape(3, 3)[:, 2]
    through_plane_tolerance = max(IN_PLANE_TOLERANCE_MM, THROUGH_PLANE_TOLERANCE * reference.GetSpacing()[2])
    indices = []
    for dataset in datasets:
        position = np.asarray(dataset.ImagePositionPatient, dtype=float)
        index = int(round(reference.TransformPhysicalPointToContinuousIndex(position.tolist())[2]))
        index = min(max(index, 0), depth - 1)
        offset = position - np.asarray(reference.TransformIndexToPhysicalPoint((0, 0, index)))
        through_plane = float(offset @ normal)
        in_plane = float(np.linalg.norm(offset - through_plane * normal))
        if in_plane > IN_PLANE_TOLERANCE_MM or abs(through_plane) > through_plane_tolerance:
            raise ValueError(
                f"source instance {dataset.SOPInstanceUID} at {position.round(3).tolist()} mm lies {in_plane:.3f} mm "
                f"within the slice plane and {abs(through_plane):.3f} mm along the normal from slice {index} of the "
                f"label map (at most {IN_PLANE_TOLERANCE_MM} and {through_plane_tolerance:.3f} mm allowed), "
                "so the label map and the series are not on the same grid"
            )
        indices.append(index)
    return indices


def order_sources_by_slice(label_image: sitk.Image, datasets: Sequence[Dataset]) -> list[Dataset]:
    """Return the source instances in the order of the label map's slices, matched by Image Position (Patient).

    highdicom pairs frame i of the pixel array with source image i, so this pairing must
    not depend on the order of `datasets`. Raises ValueError unless each slice has exactly
    one instance.
    """
    depth = label_image.GetSize()[2]
    if depth != len(datasets):
        raise ValueError(f"the label map has {depth} slices but the series has {len(datasets)} instances")
    by_slice: dict[int, Dataset] = {}
    for dataset, index in zip(datasets, slice_indices(datasets, label_image)):
        other = by_slice.setdefault(index, dataset)
        if other is not dataset:
            raise ValueError(
                f"source instances {other.SOPInstanceUID} and {dataset.SOPInstanceUID} both lie on slice {index} "
                "of the label map. The series has duplicate slice positions"
            )
    return [by_slice[index] for index in range(depth)]


def _segment_numbers_and_pixels(
    label_array: np.ndarray, tasks: list[Task], segmentation_type: hd.seg.SegmentationTypeValues
) -> tuple[list[int], np.ndarray]:
    """Return the segment number of each task and the pixel array that highdicom takes for the type."""
    if segmentation_type == hd.seg.SegmentationTypeValues.LABELMAP:
        largest = max(task.id for task in tasks)
        if largest > np.iinfo(np.uint16).max:
            raise ValueError(
                f"catalogue id {largest} does not fit the 16-bit pixels of a LABELMAP SEG. Write a BINARY SEG instead"
            )
        return [task.id for task in tasks], label_array.astype(np.uint16)
    numbers = list(range(1, len(tasks) + 1))
    lookup = np.zeros(int(max(label_array.max(initial=0), max(task.id for task in tasks))) + 1, dtype=np.uint16)
    for number, task in zip(numbers, tasks):
        lookup[task.id] = number
    return numbers, lookup[label_array]


def build_segmentation(
    label_image: sitk.Image,
    source_images: Sequence[Dataset],
    tasks: Sequence[Task],
    algorithm: AlgorithmInfo | None = None,
    *,
    segmentation_type: str = "LABELMAP",
    omit_empty_frames: bool = False,
    manufacturer_model_name: str = ALGORITHM_NAME,
    series_description: str = SERIES_DESCRIPTION,
    content_label: str = CONTENT_LABEL,
    content_description: str | None = None,
    series_number: int | None = None,
) -> hd.seg.Segmentation:
    """Return the SEG of a label map whose values are catalogue ids, one segment per task in `tasks`.

    `label_image` lies on the grid of `source_images`, the instances of one series, given in any
    order. A task without voxels gets an empty segment, which records that the structure was
    looked for. Frames without segmented pixels are kept unless `omit_empty_frames` is set,
    because some viewers misplace SEGs with missing frames. Without `algorithm` the segments
    are MANUAL. `series_number` defaults to the source series number plus SERIES_NUMBER_OFFSET.

    Raises ValueError when `tasks` is empty, when the label map contains an id that no task has,
    when a LABELMAP task id is above 65535, or when a slice of the label map has no source instance.
    """
    tasks = sorted(tasks, key=lambda task: task.id)
    if not tasks:
        raise ValueError("no task to describe, but a DICOM SEG needs at least one segment")
    label_array = sitk.GetArrayFromImage(label_image)
    unknown = sorted(set(np.unique(label_array).tolist()) - {0} - {task.id for task in tasks})
    if unknown:
        raise ValueError(
            f"the label map contains ids {unknown} of no given task ({', '.join(t.name for t in tasks)}). "
            "Pass the tasks of every id in the label map"
        )
    sources = order_sources_by_slice(label_image, source_images)
    segmentation_type = hd.seg.SegmentationTypeValues(segmentation_type.upper())
    numbers, pixel_array = _segment_numbers_and_pixels(label_array, tasks, segmentation_type)
    descriptions = [segment_description(task, number, algorithm) for number, task in zip(numbers, tasks)]

    if series_number is None:
        source_number = sources[0].get("SeriesNumber")
        series_number = SERIES_NUMBER_OFFSET + (int(source_number) if source_number not in (None, "") else 0)
    now = datetime.datetime.now()
    segmentation = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixel_array,
        segmentation_type=segmentation_type,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=manufacturer_model_name,
        software_versions=algorithm.version if algorithm else gcis.__version__,
        device_serial_number="none",
        series_description=series_description,
        content_label=content_label,
        content_description=content_description or f"gCIS segmentation of {len(tasks)} structures",
        omit_empty_frames=omit_empty_frames,
        series_date=now.date(),
        series_time=now.time(),
    )
    logger.info(
        "built %s SEG: %d segments (%s), %d frames",
        segmentation_type.value, len(descriptions), ", ".join(task.name for task in tasks), segmentation.NumberOfFrames,
    )
    return segmentation


def read_segmentation(
    seg: str | Path | hd.seg.Segmentation,
    source_images: Sequence[Dataset],
    reference: sitk.Image,
    catalogue: TaskCatalogue,
) -> tuple[sitk.Image, list[Task]]:
    """Read a LABELMAP or BINARY SEG of the `source_images` series into a catalogue-id label map on the reference grid.

    Returns the label map and the catalogue task of each recognised segment, in segment
    order and without repeats. Slices without frames, and slices of instances that the SEG
    does not reference, stay 0. The label map is 8-bit while every id is below 256 and
    16-bit otherwise.
    """
    if not isinstance(seg, hd.seg.Segmentation):
        seg = hd.seg.segread(str(seg))
    segment_tasks: dict[int, Task] = {}
    for number in seg.get_segment_numbers():
        task = task_of_segment(seg.get_segment_description(number), catalogue)
        if task is None:
            logger.warning("segment %d of SEG %s matches no catalogue task and is skipped", number, seg.SOPInstanceUID)
        else:
            segment_tasks[number] = task

    referenced = {
        str(item.ReferencedSOPInstanceUID)
        for series in seg.get("ReferencedSeriesSequence", [])
        for item in series.ReferencedInstanceSequence
    }
    covered = [dataset for dataset in source_images if str(dataset.SOPInstanceUID) in referenced]
    values = np.zeros(tuple(reversed(reference.GetSize())), dtype=np.uint16)
    if covered and segment_tasks:
        pixels = seg.get_pixels_by_source_instance(
            [str(dataset.SOPInstanceUID) for dataset in covered],
            segment_numbers=sorted(segment_tasks),
            combine_segments=True,
            relabel=False,
            assert_missing_frames_are_empty=True,
            skip_overlap_checks=True,
        )
        lookup = np.zeros(max(segment_tasks) + 1, dtype=np.uint16)
        for number, task in segment_tasks.items():
            lookup[number] = task.id
        for frame, index in zip(pixels, slice_indices(covered, reference)):
            values[index] = lookup[frame]

    dtype = np.uint8 if values.max(initial=0) <= np.iinfo(np.uint8).max else np.uint16
    label = sitk.GetImageFromArray(values.astype(dtype))
    label.CopyInformation(reference)
    return label, list(dict.fromkeys(segment_tasks.values()))
