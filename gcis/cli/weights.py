"""Weights options shared by sub-commands: a checkpoint file, or a preset with random weights."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from gcis.catalogue import load_catalogue
from gcis.checkpoint import Checkpoint, load_checkpoint, new_checkpoint
from gcis.network import preset_names
from gcis.prompts import DEFAULT_TEXT_ENCODER, TextEncoder, embed_catalogue

logger = logging.getLogger(__name__)

WEIGHTS_ENV = "GCIS_WEIGHTS"
DEFAULT_WEIGHTS = Path("bundle") / "models" / "model.pt"


def add_weights_arguments(parser) -> None:
    parser.add_argument(
        "--weights",
        help=f"gCIS checkpoint (default: ${WEIGHTS_ENV}, else {DEFAULT_WEIGHTS} under the current folder)",
    )
    parser.add_argument(
        "--preset",
        choices=preset_names(),
        help="build a network of this size with random weights instead of loading a checkpoint",
    )
    parser.add_argument(
        "--text-encoder",
        default=DEFAULT_TEXT_ENCODER,
        help="local Hugging Face text model folder used to embed prompts with --preset",
    )


def open_weights(args) -> Checkpoint:
    """Load the checkpoint that the arguments name, or build a random one from --preset."""
    if args.preset:
        logger.warning("using random weights of preset %s: outputs are meaningless except for tests", args.preset)
        embeddings = embed_catalogue(TextEncoder(args.text_encoder), load_catalogue())
        return new_checkpoint(args.preset, embeddings)

    path = args.weights or os.environ.get(WEIGHTS_ENV)
    if path is None and DEFAULT_WEIGHTS.is_file():
        path = DEFAULT_WEIGHTS
    if path is None:
        raise FileNotFoundError(
            f"no weights given: pass --weights FILE, set ${WEIGHTS_ENV}, run from the repository root "
            f"where {DEFAULT_WEIGHTS} lies, or pass --preset NAME for random weights"
        )
    checkpoint, _ = load_checkpoint(path)
    return checkpoint


def bundle_weights(bundle: str | None) -> Path:
    """Return the weights file of a bundle folder (default: ./bundle), or $GCIS_WEIGHTS when no bundle is named."""
    if bundle is None and os.environ.get(WEIGHTS_ENV):
        return Path(os.environ[WEIGHTS_ENV])
    folder = Path(bundle) if bundle else Path("bundle")
    path = folder / "models" / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"weights {path} not found; pass --bundle DIR (a gCIS bundle folder), --weights FILE or set ${WEIGHTS_ENV}"
        )
    return path
