"""Inference: multi-task sliding window and the Segmenter used by every front."""

from gcis.inference.segmenter import SegmentationResult, Segmenter, UntrainedTaskError
from gcis.inference.sliding_window import DEFAULT_WINDOW_BATCH, predict_label_map

__all__ = ["DEFAULT_WINDOW_BATCH", "SegmentationResult", "Segmenter", "UntrainedTaskError", "predict_label_map"]
