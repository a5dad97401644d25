"""Shared fixtures: tiny networks and the paths of the real CT data beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GCIS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data folder {SHARED_DATA} not found; set GCIS_SHARED_DATA to the data folder")
    return SHARED_DATA


@pytest.fixture()
def tiny_config():
    from gcis.network import load_preset

    return load_preset("tiny", prompt_dim=16)


@pytest.fixture()
def tiny_net(tiny_config):
    from gcis.network import GCISNet

    torch.manual_seed(0)
    return GCISNet(tiny_config).eval()


@pytest.fixture(scope="session")
def text_encoder():
    from gcis.prompts import TextEncoder

    return TextEncoder()


TINY_TRAINED_TASKS = ["liver", "spleen", "kidney_left", "kidney_right", "aorta"]


@pytest.fixture(scope="session")
def tiny_checkpoint_file(tmp_path_factory, text_encoder) -> Path:
    """A tiny-preset checkpoint with random weights that lists five abdominal tasks as trained."""
    from gcis.catalogue import load_catalogue
    from gcis.checkpoint import new_checkpoint, save_checkpoint
    from gcis.prompts import embed_catalogue

    checkpoint = new_checkpoint("tiny", embed_catalogue(text_encoder, load_catalogue()))
    checkpoint.trained_tasks = list(TINY_TRAINED_TASKS)
    checkpoint.metadata["preprocessing"] = {"spacing": [6.0, 6.0, 6.0], "hu_min": -500.0, "hu_max": 500.0}
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    save_checkpoint(path, checkpoint)
    return path
