"""Uncertainty score of unlabelled images for active learning: mean sigmoid entropy of the prediction.

Why this score: gCIS routing depends only on the prompt, so the routing-probability entropy
(gcis.network.routing_entropy) is the same for every image and cannot rank images. The
per-voxel sigmoid output of each structure does depend on the image, and its binary entropy
H(p) = -p log2 p - (1 - p) log2 (1 - p) is 0 where the network is sure and 1 bit where p = 0.5.
The score is the mean of H over the voxels inside the patient and over the structures of the
automatic infer task, so an image with larger or more doubtful regions scores higher. One
forward pass per window is needed, where test-time augmentation would need several.

"Inside the patient" means the voxels above the lower end of the model's HU window (air
outside the body would otherwise dilute the mean by field of view).

Preprocessing is the core's (gcis.data.geometry.to_model_grid). The core's sliding window keeps
only the label map, so the probabilities come from MONAI's sliding_window_inference with the
same window size and overlap.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict

import torch
from monai.inferers import sliding_window_inference
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.scoring import ScoringMethod

from gcis.catalogue import Task
from gcis.data.geometry import InvalidInputError, check_ct, read_volume, to_model_grid
from gcis.inference import Segmenter
from lib.weights import GCISWeights

logger = logging.getLogger(__name__)

SCORE_KEY = "gcis_uncertainty"
VERSION_KEY = "gcis_uncertainty_weights"
# Structures per forward pass; bounds the probability volume held in memory (T x D x H x W floats).
TASKS_PER_PASS = 8


def mean_sigmoid_entropy(segmenter: Segmenter, image, tasks: list[Task], source: str = "input") -> float:
    """Return the mean binary entropy (bits, 0..1) of the predictions of `tasks` inside the patient."""
    check_ct(image, source)
    if not tasks:
        return 0.0
    volume, _ = to_model_grid(image, segmenter.preprocessing)
    inputs = torch.from_numpy(volume)[None, None].to(segmenter.device)
    inside = inputs[0, 0] > 0.0  # above the HU window's lower end, i.e. not air
    if not bool(inside.any()):
        return 0.0

    total = 0.0
    roi_size = segmenter.model.config.roi_size
    for first in range(0, len(tasks), TASKS_PER_PASS):
        chunk = tasks[first : first + TASKS_PER_PASS]
        prompts = segmenter.checkpoint.embeddings.get([task.name for task in chunk]).to(segmenter.device)
        with torch.inference_mode():
            logits = sliding_window_inference(
                inputs, roi_size, segmenter.batch_size, _predictor(segmenter, prompts), overlap=segmenter.overlap
            )
        probability = torch.sigmoid(logits[0]).clamp(1e-6, 1 - 1e-6)
        entropy = -(probability * torch.log2(probability) + (1 - probability) * torch.log2(1 - probability))
        total += float(entropy[:, inside].mean(dim=1).sum())
    return total / len(tasks)


def _predictor(segmenter: Segmenter, prompts: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    def predict(windows: torch.Tensor) -> torch.Tensor:
        return segmenter.model(windows.contiguous(memory_format=torch.channels_last_3d), prompts)

    return predict


class GCISUncertaintyScoring(ScoringMethod):
    """Store ``gcis_uncertainty`` in the image info of every unlabelled image, once per weights version."""

    def __init__(self, weights: GCISWeights, tasks: Callable[[], list[Task]]):
        super().__init__("gCIS uncertainty: mean sigmoid entropy of the predicted structures")
        self.weights = weights
        self.tasks = tasks

    def __call__(self, request: Dict[str, Any], datastore: Datastore) -> Dict[str, Any]:
        version = self.weights.version()
        segmenter = self.weights.segmenter()
        tasks = self.tasks()
        images = datastore.get_unlabeled_images()
        force = bool(request.get("force", False))

        scores: Dict[str, Any] = {}
        skipped = 0
        for image_id in images:
            if not force and datastore.get_image_info(image_id).get(VERSION_KEY) == version:
                skipped += 1
                continue
            start = time.perf_counter()
            try:
                image = read_volume(datastore.get_image_uri(image_id))
                score = mean_sigmoid_entropy(segmenter, image, tasks, source=f"image {image_id}")
            except (InvalidInputError, FileNotFoundError) as error:
                logger.warning("uncertainty of image %s not computed: %s", image_id, error)
                continue
            datastore.update_image_info(image_id, {SCORE_KEY: score, VERSION_KEY: version})
            scores[image_id] = score
            logger.info("uncertainty of image %s: %.4f bits (%.1f s)", image_id, score, time.perf_counter() - start)

        logger.info("uncertainty scoring: %d unlabelled images, %d scored, %d already current", len(images), len(scores), skipped)
        return {"scores": scores, "skipped": skipped, "weights": version}
