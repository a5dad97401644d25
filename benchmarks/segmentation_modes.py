"""The five ways of segmenting one volume that the benchmark compares.

Each ``prepare_*`` function does the one-time set-up of a mode (moving weights,
pruning) and returns a segmenter: a function from a normalised volume
(D, H, W) on the model grid to a label map of the same shape. The benchmark times
the set-up and the segmentation apart. All modes use the same window size, overlap
and window batch, so they differ only in how the network is run:

- ``one_task``: gCIS with one prompt.
- ``all_tasks``: gCIS with all prompts at once: one encoder pass per window, one
  decoder pass per distinct route prefix, one running label map.
- ``one_prompt_at_a_time``: the whole network once per prompt, each with MONAI's
  Gaussian-weighted sliding window and its own full-volume probability map, merged
  at the end. This is how the published gCIS code segments several structures.
- ``pruned``: the task-specific network of one prompt.
- ``vista3d``: MONAI's VISTA3D network (``vista3d132``, random weights) with class
  prompts, the peer reference.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from gcis.catalogue import load_catalogue
from gcis.checkpoint import Checkpoint
from gcis.inference.sliding_window import predict_label_map
from gcis.network import prune

MODES = ("one_task", "all_tasks", "one_prompt_at_a_time", "pruned", "vista3d")

VolumeSegmenter = Callable[[np.ndarray], np.ndarray]


def channels_last(windows: torch.Tensor) -> torch.Tensor:
    return windows.contiguous(memory_format=torch.channels_last_3d)


def prepare_gcis(checkpoint: Checkpoint, tasks: list[str], overlap: float, batch_size: int) -> VolumeSegmenter:
    """Segment all `tasks` together (modes one_task and all_tasks)."""
    model = checkpoint.model.to(memory_format=torch.channels_last_3d).eval()
    prompts = checkpoint.embeddings.get(tasks)
    ids = [load_catalogue().get(task).id for task in tasks]

    def segment(volume: np.ndarray) -> np.ndarray:
        return predict_label_map(
            lambda windows: model(channels_last(windows), prompts), volume, ids, model.config.roi_size,
            overlap=overlap, batch_size=batch_size,
        )

    return segment


def prepare_one_prompt_at_a_time(
    checkpoint: Checkpoint, tasks: list[str], overlap: float, batch_size: int
) -> VolumeSegmenter:
    """Segment each task with its own sliding-window pass and probability map, then merge."""
    model = checkpoint.model.to(memory_format=torch.channels_last_3d).eval()
    ids = torch.tensor([load_catalogue().get(task).id for task in tasks], dtype=torch.int32)

    @torch.inference_mode()
    def segment(volume: np.ndarray) -> np.ndarray:
        image = torch.as_tensor(volume, dtype=torch.float32)[None, None]
        probability_maps = []
        for task in tasks:
            prompt = checkpoint.embeddings.get([task])
            logits = sliding_window_inference(
                image, model.config.roi_size, batch_size,
                lambda windows, prompt=prompt: model(channels_last(windows), prompt),
                overlap=overlap, mode="gaussian",
            )
            probability_maps.append(torch.sigmoid(logits[0, 0]))

        best_probability, best_task = torch.stack(probability_maps).max(dim=0)
        return torch.where(best_probability > 0.5, ids[best_task], 0).numpy()

    return segment


def prepare_pruned(checkpoint: Checkpoint, task: str, overlap: float, batch_size: int) -> VolumeSegmenter:
    """Segment one task with its pruned network (the sub-pathways of its route only).

    The network runs eagerly. On the 2-core CPU of docs/benchmarks.md, a TorchScript
    trace frozen by ``torch.jit.optimize_for_inference`` was no faster (0.99 and 1.21
    times the one-task time in two runs). In a one-off check, ``torch.compile`` took 6 minutes
    to compile and then ran a window 10% slower.
    """
    network = prune(checkpoint.model.eval(), checkpoint.embeddings.get([task])[0])
    network = network.to(memory_format=torch.channels_last_3d)
    task_id = load_catalogue().get(task).id

    def segment(volume: np.ndarray) -> np.ndarray:
        return predict_label_map(
            lambda windows: network(channels_last(windows)), volume, [task_id], network.config.roi_size,
            overlap=overlap, batch_size=batch_size,
        )

    return segment


def prepare_vista3d(
    num_classes: int, roi_size: tuple[int, int, int], overlap: float, batch_size: int
) -> VolumeSegmenter:
    """Segment `num_classes` VISTA3D classes (ids 1..num_classes) with random weights."""
    from monai.networks.nets import vista3d132

    torch.manual_seed(0)
    model = vista3d132(in_channels=1).eval()
    class_vector = torch.arange(1, num_classes + 1).reshape(-1, 1)
    ids = list(range(1, num_classes + 1))

    def predictor(windows: torch.Tensor) -> torch.Tensor:
        # With class prompts only, VISTA3D takes a batch of windows; transpose=True returns (B, classes, D, H, W).
        return model(windows, class_vector=class_vector, transpose=True)

    def segment(volume: np.ndarray) -> np.ndarray:
        return predict_label_map(predictor, volume, ids, roi_size, overlap=overlap, batch_size=batch_size)

    return segment


def prepare(mode: str, checkpoint: Checkpoint, tasks: list[str], overlap: float, batch_size: int) -> VolumeSegmenter:
    """Return the segmenter of `mode` (one of MODES) for `tasks`."""
    if mode in ("one_task", "all_tasks"):
        return prepare_gcis(checkpoint, tasks, overlap, batch_size)
    if mode == "one_prompt_at_a_time":
        return prepare_one_prompt_at_a_time(checkpoint, tasks, overlap, batch_size)
    if mode == "pruned":
        return prepare_pruned(checkpoint, tasks[0], overlap, batch_size)
    if mode == "vista3d":
        return prepare_vista3d(len(tasks), checkpoint.model.config.roi_size, overlap, batch_size)
    raise ValueError(f"benchmark mode {mode!r} is unknown; use one of {', '.join(MODES)}")
