"""The gCIS inference operator: the SDK's CT volume in, a label map in the same geometry out."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from gcis.catalogue import Task
from gcis.data.geometry import InvalidInputError
from gcis.inference.segmenter import Segmenter
from gcis.inference.sliding_window import DEFAULT_WINDOW_BATCH
from monai.deploy.core import Fragment, Operator, OperatorSpec

from gcis_deploy.errors import InputError, TaskSelectionError
from gcis_deploy.volume import volume_to_sitk

logger = logging.getLogger(__name__)


def load_segmenter(weights: Path, prompts: list[str] | None = None, device: str = "cpu", overlap: float = 0.25,
                   batch_size: int = DEFAULT_WINDOW_BATCH) -> tuple[Segmenter, list[Task]]:
    """Load the weights and resolve the tasks (all trained tasks when `prompts` is empty).

    Raises TaskSelectionError for an unknown task or one the weights were not trained on.
    """
    started = time.perf_counter()
    segmenter = Segmenter.from_weights(weights, device=device, overlap=overlap, batch_size=batch_size)
    try:
        tasks = segmenter.resolve_tasks(list(prompts or []) or None)
    except ValueError as error:
        # UnknownPromptError (a ValueError) for an unknown prompt; plain ValueError for untrained tasks.
        raise TaskSelectionError(str(error)) from error
    logger.info(
        "loaded weights %s in %.1f s; tasks: %s", weights, time.perf_counter() - started,
        ", ".join(f"{task.name} ({task.id})" for task in tasks),
    )
    return segmenter, tasks


class GCISInferenceOperator(Operator):
    """Segment the selected CT volume with gCIS weights for a list of catalogue tasks.

    Named input:
        image: Image from DICOMSeriesToVolumeOperator ((slices, rows, columns) in HU, with LPS metadata).
    Named output:
        segmentation: gcis.inference.SegmentationResult; its ``label_image`` has the input's exact
        geometry and contains catalogue task ids.

    The segmenter and tasks come from :func:`load_segmenter`, called when the app is composed,
    because Holoscan may tick the DICOM loader before it starts this operator: an unknown task
    must fail before any DICOM file is read. All preprocessing is done by
    ``gcis.inference.Segmenter``.
    """

    def __init__(self, fragment: Fragment, *args, segmenter: Segmenter, tasks: list[Task], **kwargs):
        self.segmenter = segmenter
        self.tasks = list(tasks)
        self.input_name_image = "image"
        self.output_name_segmentation = "segmentation"
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input(self.input_name_image)
        spec.output(self.output_name_segmentation)

    def compute(self, op_input, op_output, context):
        image = op_input.receive(self.input_name_image)
        series_uid = image.metadata().get("SeriesInstanceUID", "unknown")
        volume = volume_to_sitk(image)
        try:
            result = self.segmenter.segment(volume, self.tasks, source=f"series {series_uid}", progress=self._progress)
        except InvalidInputError as error:
            raise InputError(str(error)) from error
        found = ", ".join(f"{name} ({label})" for label, name in sorted(result.labels.items())) or "nothing"
        logger.info("series %s: found %s", series_uid, found)
        op_output.emit(result, self.output_name_segmentation)

    @staticmethod
    def _progress(done: int, total: int) -> None:
        # Log about every tenth of the windows, and the last one.
        if done == total or done % max(1, total // 10) == 0:
            logger.info("inference: %d of %d windows", done, total)
