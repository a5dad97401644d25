"""gCIS infer tasks: automatic segmentation of every trained structure, and prompted segmentation.

Both call gcis.inference.Segmenter, which reads nothing but the CT: it resamples to the model
grid, runs the sliding window and returns the label map on the input's own grid, with catalogue
task ids as values. The result parameters carry ``label_names`` ({task name: id}) so OHIF and
3D Slicer name the segments.

Request parameters (JSON ``params`` of ``POST /infer/<model>``):

- ``prompt``: free text naming one or more structures, separated by commas, semicolons or new
  lines ("left kidney, liver"). Names and synonyms match exactly; other text is matched by
  text-embedding similarity. Required by the prompted task, ignored by the automatic one.
- ``prompts``: the same as a JSON list of strings.
- ``result_extension`` (".nii.gz", ".nii", ".nrrd", ".mha"), ``result_dtype`` ("uint8",
  "uint16") and ``result_compress`` (true/false): the label file, as OHIF and Slicer request it.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np
import SimpleITK as sitk
from fastapi import HTTPException
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType
from monailabel.utils.others.generic import strtobool

from gcis.catalogue import Task
from gcis.data.geometry import InvalidInputError, read_volume
from gcis.inference import UntrainedTaskError
from gcis.prompts import UnknownPromptError
from lib.weights import GCISWeights

logger = logging.getLogger(__name__)

RESULT_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha")
RESULT_DTYPES = {"uint8": sitk.sitkUInt8, "uint16": sitk.sitkUInt16}
PROMPT_SEPARATORS = re.compile(r"[,;\n]+")


def split_prompts(request: Dict[str, Any]) -> list[str]:
    """Return the prompts of a request: ``prompts`` (list) and ``prompt`` (separated text)."""
    prompts = request.get("prompts") or []
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise HTTPException(status_code=400, detail="'prompts' must be a list of strings")
    text = request.get("prompt") or ""
    if not isinstance(text, str):
        raise HTTPException(status_code=400, detail="'prompt' must be a string")
    parts = [*prompts, *PROMPT_SEPARATORS.split(text)]
    return [p.strip() for p in parts if p.strip()]


@dataclass(frozen=True)
class ResultFormat:
    """File extension, voxel type and compression of the returned label map."""

    extension: str
    dtype: str
    compress: bool


def result_format(request: Dict[str, Any], tasks: list[Task]) -> ResultFormat:
    """Read result_extension, result_dtype and result_compress; raise a 400 response before any compute."""
    extension = request.get("result_extension") or ".nii.gz"
    if extension not in RESULT_EXTENSIONS:
        raise HTTPException(
            status_code=400, detail=f"result_extension {extension!r} is not supported; use one of {RESULT_EXTENSIONS}"
        )
    largest = max((task.id for task in tasks), default=0)
    dtype = request.get("result_dtype") or ("uint8" if largest <= np.iinfo(np.uint8).max else "uint16")
    if dtype not in RESULT_DTYPES:
        raise HTTPException(status_code=400, detail=f"result_dtype {dtype!r} is not supported; use uint8 or uint16")
    if largest > np.iinfo(dtype).max:
        raise HTTPException(status_code=400, detail=f"task id {largest} does not fit result_dtype {dtype}; use uint16")
    return ResultFormat(extension, dtype, bool(strtobool(str(request.get("result_compress", True)))))


class GCISSegmentation(InferTask):
    """Segment a CT with the app's active gCIS weights.

    With `prompted` False it segments `tasks`, or every task the weights were trained on when
    `tasks` is None. With `prompted` True it segments the structures that the request's prompts name.
    """

    def __init__(self, weights: GCISWeights, prompted: bool = False, tasks: list[str] | None = None, description: str = ""):
        self.weights = weights
        self.prompted = prompted
        self.tasks = tasks
        config = {"prompt": ""} if prompted else {}
        super().__init__(
            type=InferType.SEGMENTATION,
            labels=None,
            dimension=3,
            description=description,
            config=config,
        )

    # Information that /info shows

    def label_tasks(self) -> list[Task]:
        """Return the structures this task can return: the configured tasks, else all trained ones."""
        if self.tasks:
            return self.weights.resolve_tasks(self.tasks)
        return self.weights.trained_tasks()

    def info(self) -> Dict[str, Any]:
        info = super().info()
        info["labels"] = {task.name: task.id for task in self.label_tasks()}
        info["prompted"] = self.prompted
        return info

    def is_valid(self) -> bool:
        return self.weights.active_path().is_file()

    def get_path(self, validate=True):
        path = self.weights.active_path()
        return str(path) if path.is_file() or not validate else None

    # Pipeline

    def __call__(self, request: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
        start = time.perf_counter()
        tasks, resolved = self.select_tasks(request)
        output = result_format(request, tasks)
        image = self.read_image(request)

        try:
            result = self.weights.segmenter().segment(image, tasks, source=f"image {request.get('image')}")
        except InvalidInputError as error:
            raise HTTPException(status_code=400, detail=str(error)) from error

        label_file = self.writer(result.label_image, output)
        latencies = {key: round(value, 2) for key, value in result.timings.items()}
        latencies["total"] = round(time.perf_counter() - start, 2)
        logger.info(
            "infer %s on %s: %d structures, %d found, %.1f s",
            self.description or "gcis", request.get("image"), len(tasks), len(result.labels), latencies["total"],
        )
        params = {
            "label_names": {task.name: task.id for task in tasks},
            "found": [result.labels[key] for key in sorted(result.labels)],
            "prompts": resolved,
            "latencies": latencies,
        }
        return label_file, params

    def select_tasks(self, request: Dict[str, Any]) -> tuple[list[Task], list[dict]]:
        """Return the structures to segment and, for prompts, how each prompt was matched."""
        if not self.prompted:
            return self.label_tasks(), []

        prompts = split_prompts(request)
        if not prompts:
            raise HTTPException(
                status_code=400,
                detail="no prompt given; set 'prompt' to the structures to segment, e.g. \"liver, left kidney\"",
            )
        try:
            resolutions = self.weights.resolve_prompts(prompts)
            tasks = self.weights.resolve_tasks([resolution.task.name for resolution in resolutions])
        except (UnknownPromptError, UntrainedTaskError) as error:
            raise HTTPException(status_code=400, detail=str(error)) from error
        resolved = [
            {"prompt": r.prompt, "task": r.task.name, "method": r.method, "similarity": r.similarity}
            for r in resolutions
        ]
        return tasks, resolved

    def read_image(self, request: Dict[str, Any]) -> sitk.Image:
        path = request.get("image")
        if not isinstance(path, str) or not path:
            raise HTTPException(status_code=400, detail="no image given; pass a datastore image id")
        try:
            return read_volume(path)
        except (InvalidInputError, FileNotFoundError) as error:
            raise HTTPException(status_code=400, detail=str(error)) from error

    def writer(self, label: sitk.Image, output: ResultFormat) -> str:
        """Write the label map in the requested format to a temporary file; return its path."""
        with tempfile.NamedTemporaryFile(suffix=output.extension, prefix="gcis-result-", delete=False) as handle:
            path = Path(handle.name)
        sitk.WriteImage(sitk.Cast(label, RESULT_DTYPES[output.dtype]), str(path), useCompression=output.compress)
        return str(path)
