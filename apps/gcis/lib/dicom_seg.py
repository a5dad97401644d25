"""DICOM SEG for labels in the DICOMweb datastore, written and read with highdicom.

Each segment takes its Segmented Property Category and Type, and for one side of a paired
structure its Type Modifier (laterality, DICOM CID 244), from the task catalogue. Reading maps
segments back to catalogue tasks by those codes, so SEGs made by other tools (OHIF, 3D Slicer)
are understood when they use the same SNOMED CT concepts. A segment with unknown codes is
matched by its Segment Label instead, and skipped with a warning when that is unknown too.

Frames are matched to the image's slices by Image Position (Patient), so the order of the DICOM
files on disk does not matter.
"""

from __future__ import annotations

import logging
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

import gcis
from gcis.catalogue import Task, TaskCatalogue

logger = logging.getLogger(__name__)

SEG_SERIES_NUMBER = 9100
MANUFACTURER = "gCIS"
MODEL_NAME = "gCIS MONAI Label app"


def read_series(folder: str | Path) -> list[pydicom.Dataset]:
    """Read the headers of every DICOM file of one series folder (pixel data is not needed)."""
    datasets = []
    for path in sorted(Path(folder).iterdir()):
        if path.is_file():
            datasets.append(pydicom.dcmread(path, stop_before_pixels=True))
    if not datasets:
        raise FileNotFoundError(f"no DICOM files in {folder}")
    return datasets


def slice_indices(datasets: list[pydicom.Dataset], reference: sitk.Image) -> list[int]:
    """Return, for each DICOM instance, the slice (z index) of the reference image that it lies on."""
    indices = []
    for dataset in datasets:
        position = [float(v) for v in dataset.ImagePositionPatient]
        index = reference.TransformPhysicalPointToContinuousIndex(position)
        if abs(index[0]) > 0.5 or abs(index[1]) > 0.5 or not -0.5 < index[2] < reference.GetSize()[2] - 0.5:
            raise ValueError(
                f"instance {dataset.SOPInstanceUID} at {position} does not lie on a slice of the image grid; "
                "the label's image and the DICOM series differ"
            )
        indices.append(int(round(index[2])))
    return indices


def segment_description(number: int, task: Task) -> hd.seg.SegmentDescription:
    """Describe one segment with the task's catalogue codes, display name and colour."""
    codes = task.snomed
    description = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=task.display_name,
        segmented_property_category=_code(codes["property_category"]),
        segmented_property_type=_code(codes["property_type"]),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        tracking_id=task.name,
        tracking_uid=generate_uid(),
        display_color=hd.color.CIELabColor.from_rgb(*task.color),
    )
    if codes.get("laterality"):
        description.SegmentedPropertyTypeModifierCodeSequence = [hd.sr.CodedConcept(**_code_fields(codes["laterality"]))]
    return description


def write_seg(
    label: sitk.Image,
    annotated: list[str],
    source: list[pydicom.Dataset],
    catalogue: TaskCatalogue,
    output: str | Path,
) -> Path:
    """Write a BINARY DICOM SEG of a catalogue-id label map that lies on the grid of the `source` series.

    There is one segment per annotated task, in catalogue id order. A task without voxels gets a
    segment with no frames, which records that the annotator checked it.
    """
    tasks = sorted((catalogue.get(name) for name in annotated), key=lambda task: task.id)
    if not tasks:
        raise ValueError("the label annotates no structure; a DICOM SEG needs at least one segment")

    values = sitk.GetArrayFromImage(label)
    frames = values[slice_indices(source, label)]
    segment_numbers = np.zeros_like(frames, dtype=np.uint16)
    for number, task in enumerate(tasks, start=1):
        segment_numbers[frames == task.id] = number

    seg = hd.seg.Segmentation(
        source_images=source,
        pixel_array=segment_numbers,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment_description(number, task) for number, task in enumerate(tasks, start=1)],
        series_instance_uid=generate_uid(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL_NAME,
        software_versions=gcis.__version__ if hasattr(gcis, "__version__") else "0",
        device_serial_number="0",
        series_description="gCIS label",
        content_label="GCIS_LABEL",
        content_description="Label saved from the gCIS MONAI Label app",
    )
    output = Path(output)
    seg.save_as(output)
    logger.info("wrote DICOM SEG %s: %d segments (%s)", output, len(tasks), ", ".join(t.name for t in tasks))
    return output


def read_seg(
    path: str | Path,
    source: list[pydicom.Dataset],
    reference: sitk.Image,
    catalogue: TaskCatalogue,
) -> tuple[sitk.Image, list[str]]:
    """Read a SEG of the `source` series into a catalogue-id label map on the reference grid.

    Returns the label map and the annotated task names (one per recognised segment).
    """
    seg = hd.seg.segread(str(path))
    segment_tasks: dict[int, Task] = {}
    for number in seg.segment_numbers:
        task = task_of_segment(seg.get_segment_description(number), catalogue)
        if task is None:
            logger.warning("segment %d of SEG %s matches no catalogue task and is skipped", number, path)
        else:
            segment_tasks[number] = task

    referenced = {ref.ReferencedSOPInstanceUID for ref in _referenced_instances(seg)}
    covered = [ds for ds in source if ds.SOPInstanceUID in referenced]
    values = np.zeros(tuple(reversed(reference.GetSize())), dtype=np.uint16)
    if covered and segment_tasks:
        pixels = seg.get_pixels_by_source_instance(
            [str(ds.SOPInstanceUID) for ds in covered],
            segment_numbers=sorted(segment_tasks),
            combine_segments=True,
            relabel=False,
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
    return label, list(dict.fromkeys(task.name for task in segment_tasks.values()))


def task_of_segment(description: hd.seg.SegmentDescription, catalogue: TaskCatalogue) -> Task | None:
    """Return the catalogue task of a segment: by property type and laterality codes, else by label."""
    type_code = str(description.segmented_property_type.value)
    modifiers = getattr(description, "SegmentedPropertyTypeModifierCodeSequence", None) or []
    laterality = next((str(item.CodeValue) for item in modifiers), None)
    for task in catalogue:
        codes = task.snomed
        task_laterality = codes.get("laterality", {}).get("code") if codes.get("laterality") else None
        if codes["property_type"]["code"] == type_code and task_laterality == laterality:
            return task
    return catalogue.find_exact(str(description.segment_label))


def _referenced_instances(seg: hd.seg.Segmentation) -> list:
    instances = []
    for series in getattr(seg, "ReferencedSeriesSequence", []):
        instances.extend(series.ReferencedInstanceSequence)
    return instances


def _code_fields(entry: dict) -> dict:
    return {"value": entry["code"], "scheme_designator": entry["scheme"], "meaning": entry["meaning"]}


def _code(entry: dict) -> Code:
    return Code(entry["code"], entry["scheme"], entry["meaning"])
