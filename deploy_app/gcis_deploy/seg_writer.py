"""DICOM SEG output, written with highdicom: one LABELMAP instance by default, or BINARY.

LABELMAP (Labelmap Segmentation Storage, DICOM 2024c, highdicom >= 0.24) stores the label map as is:
each pixel value is the segment number, and the segment number is the catalogue task id. Pixels
are 8-bit while every id is below 256 and 16-bit otherwise (highdicom picks the smallest
unsigned type that fits the largest segment number), so ids never wrap; highdicom raises
for ids above 65535.

BINARY (Segmentation Storage) needs segment numbers 1..N. Segments are numbered in order
of ascending catalogue id, and each segment's SegmentDescription attribute (0062,0006)
keeps the catalogue name and id.

In both types each segment carries the catalogue display name as Segment Label, the SNOMED
CT property category and type from the catalogue, the laterality as a Segmented Property Type
Modifier where the catalogue gives one, the catalogue colour, and the algorithm
identification (name gCIS, family Artificial Intelligence, version, weights digest).
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field
from pathlib import Path

import highdicom as hd
import numpy as np
import SimpleITK as sitk
from gcis.catalogue import Task, load_catalogue
from gcis.inference.segmenter import SegmentationResult
from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from gcis_deploy.files import atomic_path

logger = logging.getLogger(__name__)

SEG_FILE_NAME = "segmentation.dcm"
SERIES_DESCRIPTION = "gCIS AI segmentation - not for clinical use"
CONTENT_LABEL = "GCIS"
MANUFACTURER = "gCIS project"
MODEL_NAME = "gCIS MONAI Deploy app"
ALGORITHM_NAME = "gCIS"
# The SEG series number is the source series number plus this offset (or the offset alone).
SERIES_NUMBER_OFFSET = 1000
LONG_STRING_MAX = 64  # DICOM VR LO, the VR of Segment Label
# A label slice matches a source instance when their positions differ by less than this (mm).
POSITION_TOLERANCE_MM = 0.01


@dataclass(frozen=True)
class AlgorithmInfo:
    """The algorithm identification written into every segment."""

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


def segment_description(task: Task, segment_number: int, algorithm: AlgorithmInfo) -> hd.seg.SegmentDescription:
    """Describe one catalogue task as a SEG segment; raise ValueError for a label longer than 64 characters."""
    label = task.display_name
    if len(label) > LONG_STRING_MAX:
        raise ValueError(
            f"catalogue task {task.name} (id {task.id}) has display name {label!r} of {len(label)} characters; "
            f"a Segment Label has at most {LONG_STRING_MAX}, so shorten its first synonym in the catalogue"
        )
    description = hd.seg.SegmentDescription(
        segment_number=segment_number,
        segment_label=label,
        segmented_property_category=coded_concept(task.snomed["property_category"]),
        segmented_property_type=coded_concept(task.snomed["property_type"]),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm.identification(),
        display_color=hd.color.CIELabColor.from_rgb(*task.color),
    )
    laterality = task.snomed.get("laterality")
    if laterality:
        # highdicom 0.28 has no argument for it, so the modifier goes into the type's code item directly.
        property_type = description.SegmentedPropertyTypeCodeSequence[0]
        property_type.SegmentedPropertyTypeModifierCodeSequence = [coded_concept(laterality)]
    description.SegmentDescription = f"gCIS task {task.name}, catalogue id {task.id}"
    return description


def order_sources_by_slice(label_image: sitk.Image, datasets: list[Dataset]) -> list[Dataset]:
    """Return the source instances in the order of the label map's slices, matched by ImagePositionPatient.

    highdicom pairs frame i of the pixel array with source image i, so this pairing must
    not depend on the order in which the SDK left the instances. Raises ValueError when a
    slice has no instance at its position.
    """
    positions = np.array([np.asarray(d.ImagePositionPatient, dtype=float) for d in datasets])
    depth = label_image.GetSize()[2]
    if depth != len(datasets):
        raise ValueError(f"the label map has {depth} slices but the series has {len(datasets)} instances")
    ordered = []
    for index in range(depth):
        corner = np.asarray(label_image.TransformIndexToPhysicalPoint((0, 0, index)))
        distances = np.linalg.norm(positions - corner, axis=1)
        nearest = int(np.argmin(distances))
        if distances[nearest] > POSITION_TOLERANCE_MM:
            raise ValueError(
                f"label map slice {index} at {corner.round(3).tolist()} mm has no source instance at that position "
                f"(nearest is {distances[nearest]:.3f} mm away)"
            )
        ordered.append(datasets[nearest])
    return ordered


def tasks_to_describe(label_array: np.ndarray, result: SegmentationResult) -> list[Task]:
    """Return the tasks whose ids occur in the label map, by ascending id; all requested tasks if none occurs."""
    present = [int(v) for v in np.unique(label_array) if v != 0]
    by_id = {task.id: task for task in result.tasks}
    catalogue = load_catalogue()
    tasks = [by_id[i] if i in by_id else catalogue.get(i) for i in present]
    if not tasks:
        tasks = sorted(result.tasks, key=lambda task: task.id)
        logger.warning(
            "no structure was found; the SEG describes the %d requested tasks as empty segments", len(tasks)
        )
    return tasks


def build_segmentation(
    result: SegmentationResult,
    datasets: list[Dataset],
    algorithm: AlgorithmInfo,
    segmentation_type: str = "LABELMAP",
    omit_empty_frames: bool = False,
) -> hd.seg.Segmentation:
    """Return the SEG of a label map whose values are catalogue ids, referencing the source CT instances."""
    label_array = sitk.GetArrayFromImage(result.label_image)
    sources = order_sources_by_slice(result.label_image, datasets)
    tasks = tasks_to_describe(label_array, result)
    segmentation_type = hd.seg.SegmentationTypeValues(segmentation_type.upper())

    if segmentation_type == hd.seg.SegmentationTypeValues.LABELMAP:
        numbers = [task.id for task in tasks]
        pixel_array = label_array.astype(np.uint16)
    else:
        numbers = list(range(1, len(tasks) + 1))
        lookup = np.zeros(int(max(label_array.max(), max(task.id for task in tasks))) + 1, dtype=np.uint16)
        for number, task in zip(numbers, tasks):
            lookup[task.id] = number
        pixel_array = lookup[label_array]
    descriptions = [segment_description(task, number, algorithm) for number, task in zip(numbers, tasks)]

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
        manufacturer_model_name=MODEL_NAME,
        software_versions=algorithm.version,
        device_serial_number="none",
        series_description=SERIES_DESCRIPTION,
        content_label=CONTENT_LABEL,
        content_description=f"gCIS segmentation of {len(tasks)} structures",
        omit_empty_frames=omit_empty_frames,
        series_date=now.date(),
        series_time=now.time(),
    )
    logger.info(
        "built %s SEG: %d segments (%s), %d frames",
        segmentation_type.value, len(descriptions), ", ".join(task.name for task in tasks), segmentation.NumberOfFrames,
    )
    return segmentation


class DICOMSegWriterOperator(Operator):
    """Write the gCIS label map as a DICOM SEG file that references the selected CT series.

    Named inputs:
        segmentation: gcis.inference.SegmentationResult from GCISInferenceOperator.
        study_selected_series_list: the selected series, whose instances the SEG references.

    File output:
        ``segmentation.dcm`` in the output folder, written under a temporary name and renamed
        when complete, so a failed run leaves no partial SEG.
    """

    def __init__(self, fragment: Fragment, *args, output_folder: Path, algorithm: AlgorithmInfo,
                 segmentation_type: str = "LABELMAP", omit_empty_frames: bool = False, **kwargs):
        self.output_folder = Path(output_folder)
        self.algorithm = algorithm
        self.segmentation_type = segmentation_type
        self.omit_empty_frames = omit_empty_frames
        self.input_name_segmentation = "segmentation"
        self.input_name_series = "study_selected_series_list"
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input(self.input_name_segmentation)
        spec.input(self.input_name_series)
        spec.output("seg_path").condition(ConditionType.NONE)

    def compute(self, op_input, op_output, context):
        result = op_input.receive(self.input_name_segmentation)
        selection = op_input.receive(self.input_name_series)
        series = selection[0].selected_series[0].series
        datasets = [sop.get_native_sop_instance() for sop in series.get_sop_instances()]
        path = self.write(result, datasets)
        op_output.emit(path, "seg_path")

    def write(self, result: SegmentationResult, datasets: list[Dataset]) -> Path:
        segmentation = build_segmentation(
            result, datasets, self.algorithm, self.segmentation_type, self.omit_empty_frames
        )
        final = self.output_folder / SEG_FILE_NAME
        with atomic_path(final) as temporary:
            segmentation.save_as(temporary)
        logger.info("wrote %s (SOP Instance UID %s)", final, segmentation.SOPInstanceUID)
        return final
