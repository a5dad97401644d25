"""The app's DICOM SEG output: one LABELMAP instance by default, or BINARY.

The SEG itself is built by gcis.dicom.seg, which documents both types and what every
segment carries. This module chooses which tasks become segments and writes the file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from gcis.catalogue import Task, load_catalogue
from gcis.dicom.seg import AlgorithmInfo, build_segmentation
from gcis.inference.segmenter import SegmentationResult
from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec
from pydicom.dataset import Dataset

from gcis_deploy.files import atomic_path

logger = logging.getLogger(__name__)

SEG_FILE_NAME = "segmentation.dcm"
MODEL_NAME = "gCIS MONAI Deploy app"


def tasks_to_describe(result: SegmentationResult) -> list[Task]:
    """Return the tasks whose ids occur in the label map, by ascending id; all requested tasks if none occurs."""
    present = [int(v) for v in np.unique(sitk.GetArrayViewFromImage(result.label_image)) if v != 0]
    by_id = {task.id: task for task in result.tasks}
    catalogue = load_catalogue()
    tasks = [by_id[i] if i in by_id else catalogue.get(i) for i in present]
    if not tasks:
        tasks = sorted(result.tasks, key=lambda task: task.id)
        logger.warning(
            "no structure was found; the SEG describes the %d requested tasks as empty segments", len(tasks)
        )
    return tasks


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
            result.label_image,
            datasets,
            tasks_to_describe(result),
            self.algorithm,
            segmentation_type=self.segmentation_type,
            omit_empty_frames=self.omit_empty_frames,
            manufacturer_model_name=MODEL_NAME,
        )
        final = self.output_folder / SEG_FILE_NAME
        with atomic_path(final) as temporary:
            segmentation.save_as(temporary)
        logger.info("wrote %s (SOP Instance UID %s)", final, segmentation.SOPInstanceUID)
        return final
