"""Segment a CT with gCIS weights: checks, model-grid resampling, sliding window, back to input geometry.

Every front (the `gcis segment` command, the bundle, the MONAI Label app and the
Deploy app) calls this class, so preprocessing exists once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
import torch

from gcis.catalogue import Task, load_catalogue
from gcis.checkpoint import Checkpoint, load_weights
from gcis.data.geometry import Preprocessing, check_ct, from_model_grid, to_model_grid
from gcis.inference.postprocessing import keep_largest_components
from gcis.inference.sliding_window import DEFAULT_WINDOW_BATCH, predict_label_map
from gcis.prompts import DEFAULT_TEXT_ENCODER, PromptResolver, TextEncoder

logger = logging.getLogger(__name__)


class UntrainedTaskError(ValueError):
    """A requested catalogue task that the loaded weights were not trained on."""


@dataclass
class SegmentationResult:
    """A label map in the input's geometry; `labels` maps each label id present to its task name."""

    label_image: sitk.Image
    labels: dict[int, str]
    tasks: list[Task]
    timings: dict[str, float] = field(default_factory=dict)


class Segmenter:
    """Run a gCIS checkpoint on CT volumes (sitk.Image) for a list of catalogue tasks.

    With `largest_component` (the default), each one-piece structure keeps only its
    largest connected piece (see gcis/inference/postprocessing.py).
    """

    def __init__(
        self,
        checkpoint: Checkpoint,
        device: str | torch.device = "cpu",
        overlap: float = 0.25,
        batch_size: int = DEFAULT_WINDOW_BATCH,
        text_encoder: str = DEFAULT_TEXT_ENCODER,
        largest_component: bool = True,
        blend: str = "central",
        window_size: int | None = None,
    ):
        self.checkpoint = checkpoint
        self.device = torch.device(device)
        self.model = checkpoint.model.to(self.device, memory_format=torch.channels_last_3d).eval()
        self.overlap = overlap
        self.batch_size = batch_size
        self.largest_component = largest_component
        self.blend = blend
        self.roi_size = self.model.config.roi_size
        if window_size is not None:
            # NOTE: windows larger than the training crops scored lower with the shipped weights (bundle/docs/training.md).
            try:
                self.roi_size = self.model.config.replace(roi_size=(window_size,) * 3).roi_size
            except ValueError as error:
                raise ValueError(f"invalid window size {window_size}: {error}") from error
        self.catalogue = load_catalogue()
        self.preprocessing = Preprocessing.from_dict(checkpoint.metadata.get("preprocessing", Preprocessing().to_dict()))
        self.resolver = PromptResolver(self.catalogue, encoder_factory=lambda: TextEncoder(text_encoder))

    @classmethod
    def from_weights(cls, path, **options) -> "Segmenter":
        """Build from a full checkpoint, or from a pruned or adapted task network (one task)."""
        return cls(load_weights(path), **options)

    @property
    def trained_tasks(self) -> list[Task]:
        return [self.catalogue.get(name) for name in self.checkpoint.trained_tasks]

    def resolve_tasks(self, prompts: list[str] | None, allow_untrained: bool = False) -> list[Task]:
        """Return the tasks of the prompts (all trained tasks for None); raise before any compute on a bad one."""
        if not prompts:
            if not self.checkpoint.trained_tasks:
                raise ValueError("these weights list no trained tasks; name the tasks to segment")
            return self.trained_tasks
        tasks = []
        for resolution in self.resolver.resolve_all(prompts):
            if resolution.task not in tasks:
                tasks.append(resolution.task)
        untrained = [t.name for t in tasks if t.name not in self.checkpoint.trained_tasks]
        if untrained and not allow_untrained:
            raise UntrainedTaskError(
                f"tasks {untrained} are not among the {len(self.checkpoint.trained_tasks)} tasks these weights were "
                f"trained on ({', '.join(self.checkpoint.trained_tasks)}); adapt the model to them first"
            )
        return tasks

    def segment(self, image: sitk.Image, tasks: list[Task], source: str = "input", progress=None) -> SegmentationResult:
        """Segment one CT; `progress(done, total)` is called after each batch of windows."""
        timings = {}
        start = time.perf_counter()
        check_ct(image, source)
        volume, grid = to_model_grid(image, self.preprocessing)
        timings["preprocess_s"] = time.perf_counter() - start

        start = time.perf_counter()
        labels = self.predict_array(volume, tasks, progress=progress)
        timings["inference_s"] = time.perf_counter() - start

        start = time.perf_counter()
        if self.largest_component:
            keep_largest_components(labels, tasks)
        label_image = from_model_grid(labels, grid, image)
        present = np.unique(sitk.GetArrayViewFromImage(label_image))
        names = {task.id: task.name for task in tasks}
        found = {int(v): names[int(v)] for v in present if int(v) in names}
        timings["postprocess_s"] = time.perf_counter() - start
        logger.info(
            "segmented %s: %d tasks, %d found, model grid %s, %s",
            source, len(tasks), len(found), volume.shape,
            ", ".join(f"{k} {v:.1f}" for k, v in timings.items()),
        )
        return SegmentationResult(label_image=label_image, labels=found, tasks=tasks, timings=timings)

    def window_predictor(self, tasks: list[Task]):
        """Return a function that maps a batch of windows (B, 1, D, H, W) to the tasks' logits (B, T, D, H, W)."""
        prompts = self.checkpoint.embeddings.get([t.name for t in tasks]).to(self.device)
        return lambda windows: self.model(windows.contiguous(memory_format=torch.channels_last_3d), prompts)

    def predict_array(self, volume: np.ndarray, tasks: list[Task], progress=None) -> np.ndarray:
        """Return the label map (D, H, W) of a volume already on the model grid and normalised."""
        return predict_label_map(
            self.window_predictor(tasks),
            volume,
            [t.id for t in tasks],
            self.roi_size,
            overlap=self.overlap,
            batch_size=self.batch_size,
            device=self.device,
            progress=progress,
            blend=self.blend,
        )
