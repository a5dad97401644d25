"""Command-line options shared by `gcis segment` and `gcis evaluate`, the sub-commands that run the Segmenter."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from gcis.cli.weights import bundle_weights
from gcis.inference.sliding_window import BLEND_MODES


MAX_OVERLAP = 0.9


def overlap_fraction(text: str) -> float:
    """Parse --overlap: a fraction of the window from 0 to MAX_OVERLAP."""
    value = float(text)
    if not 0.0 <= value <= MAX_OVERLAP:
        raise argparse.ArgumentTypeError(f"invalid overlap {text}: give a fraction of the window from 0 to {MAX_OVERLAP}")
    return value


def positive_int(text: str) -> int:
    """Parse a count that must be at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text}: give 1 or more")
    return value


def window_edge(text: str) -> int:
    """Parse --window-size: an edge length in voxels that is a positive multiple of 32."""
    value = int(text)
    if value < 32 or value % 32:
        raise argparse.ArgumentTypeError(f"invalid window size {text}: give a multiple of 32 voxels, such as 64 or 96")
    return value


def add_segmenter_arguments(parser) -> None:
    """Add the weights, device, window size, overlap and blending, and connected-piece options to `parser`."""
    parser.add_argument("--bundle", help="bundle folder whose models/model.pt to use (default: ./bundle)")
    parser.add_argument("--weights", help="checkpoint file (overrides --bundle)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=device, help=f"cpu or cuda (default: {device})")
    parser.add_argument(
        "--overlap", type=overlap_fraction, default=0.25,
        help=f"overlap of neighbouring sliding windows, as a fraction of the window, 0 to {MAX_OVERLAP} (default: 0.25)",
    )
    parser.add_argument(
        "--window-size", type=window_edge,
        help="edge of the cubic sliding window in voxels of the model grid, a multiple of 32 "
        "(default: the crop size the weights were trained on)",
    )
    parser.add_argument(
        "--blend", default="central", choices=BLEND_MODES,
        help="central: each voxel takes the label of its most central window; weighted: average the "
        "probabilities of overlapping windows (one more volume of memory per task)",
    )
    parser.add_argument(
        "--all-components", action="store_true",
        help="keep every connected piece of each label (by default one-piece structures keep only the largest)",
    )


def segmenter_weights(args) -> Path:
    """Return the checkpoint that --weights or --bundle names."""
    return Path(args.weights) if args.weights else bundle_weights(args.bundle)


def segmenter_settings(args) -> dict:
    """Return the Segmenter keyword arguments that the shared options set."""
    return {
        "device": args.device,
        "overlap": args.overlap,
        "blend": args.blend,
        "window_size": args.window_size,
        "largest_component": not args.all_components,
    }
