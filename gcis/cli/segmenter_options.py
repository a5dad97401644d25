"""Command-line options shared by `gcis segment` and `gcis evaluate`, the sub-commands that run the Segmenter."""

from __future__ import annotations

from pathlib import Path

import torch

from gcis.cli.weights import bundle_weights
from gcis.inference.sliding_window import BLEND_MODES


def add_segmenter_arguments(parser) -> None:
    """Add the weights, device, window overlap, window blending and connected-piece options to `parser`."""
    parser.add_argument("--bundle", help="bundle folder whose models/model.pt to use (default: ./bundle)")
    parser.add_argument("--weights", help="checkpoint file (overrides --bundle)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    parser.add_argument("--overlap", type=float, default=0.25, help="sliding-window overlap, 0 to 0.9")
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
        "largest_component": not args.all_components,
    }
