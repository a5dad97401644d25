"""DICOM SEG for labels in the DICOMweb datastore: the app's choices around gcis.dicom.seg.

gcis.dicom.seg builds and reads the SEG (catalogue codes, laterality, colours, frames paired
with instances by Image Position (Patient)). This module gives it the label app's terms:
task names in the `annotated` list, MANUAL segments and a SEG file on disk.

Labels are written as BINARY SEGs rather than the core's LABELMAP default, because
Labelmap Segmentation Storage only entered the standard in DICOM 2024c and viewers that
predate it read BINARY only. Reading takes either type.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pydicom
import SimpleITK as sitk

from gcis.catalogue import TaskCatalogue
from gcis.dicom.seg import build_segmentation, read_segmentation

logger = logging.getLogger(__name__)

MODEL_NAME = "gCIS MONAI Label app"
SERIES_DESCRIPTION = "gCIS label - not for clinical use"
CONTENT_LABEL = "GCIS_LABEL"


def write_seg(
    label: sitk.Image,
    annotated: list[str],
    source: list[pydicom.Dataset],
    catalogue: TaskCatalogue,
    output: str | Path,
) -> Path:
    """Write a BINARY DICOM SEG of a catalogue-id label map that lies on the grid of the `source` series.

    There is one segment per annotated task, in catalogue id order. A task without voxels gets an
    empty segment, which records that the annotator checked it.
    """
    tasks = [catalogue.get(name) for name in annotated]
    seg = build_segmentation(
        label,
        source,
        tasks,
        segmentation_type="BINARY",
        manufacturer_model_name=MODEL_NAME,
        series_description=SERIES_DESCRIPTION,
        content_label=CONTENT_LABEL,
        content_description="Label saved from the gCIS MONAI Label app",
    )
    output = Path(output)
    seg.save_as(output)
    logger.info("wrote DICOM SEG %s: %d segments (%s)", output, len(tasks), ", ".join(annotated))
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
    label, tasks = read_segmentation(path, source, reference, catalogue)
    return label, [task.name for task in tasks]
