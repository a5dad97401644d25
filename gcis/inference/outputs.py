"""Writing segmentation results: label map, label names and optional per-task masks."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import SimpleITK as sitk

from gcis.data.geometry import read_volume

logger = logging.getLogger(__name__)


def write_result(result, output: Path, masks: bool = False) -> None:
    """Write labels.nii.gz, labels.json and, with `masks`, masks/<task>.nii.gz; each file written atomically."""
    _write_image(result.label_image, output / "labels.nii.gz")
    labels = {str(task_id): name for task_id, name in sorted(result.labels.items())}
    temporary = output / "labels.json.tmp"
    temporary.write_text(json.dumps(labels, indent=2), encoding="utf-8")
    temporary.replace(output / "labels.json")
    if masks:
        (output / "masks").mkdir(exist_ok=True)
        for task_id, name in result.labels.items():
            mask = sitk.Cast(result.label_image == task_id, sitk.sitkUInt8)
            _write_image(mask, output / "masks" / f"{name}.nii.gz")


def _write_image(image: sitk.Image, path: Path) -> None:
    temporary = path.with_name(".partial-" + path.name)
    sitk.WriteImage(image, str(temporary), useCompression=True)
    temporary.replace(path)


def segment_files(segmenter, inputs: list[str], output_dir: str | Path, tasks: list[str] | None = None, masks: bool = False) -> list[Path]:
    """Segment each input file or DICOM folder into output_dir/<name>/; return the folders written.

    The name is the file name without its extension. Tasks are resolved once, before any compute.
    """
    resolved = segmenter.resolve_tasks(tasks)
    written = []
    for source in inputs:
        name = Path(source).name.split(".")[0]
        result = segmenter.segment(read_volume(source), resolved, source=str(source))
        folder = Path(output_dir) / name
        folder.mkdir(parents=True, exist_ok=True)
        write_result(result, folder, masks=masks)
        written.append(folder)
        logger.info("wrote %s (%d structures)", folder, len(result.labels))
    return written
