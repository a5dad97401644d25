"""Saving and loading full and pruned networks."""

from __future__ import annotations

import pytest
import torch

from gcis.checkpoint import load_checkpoint, load_pruned, new_checkpoint, save_checkpoint, save_pruned
from gcis.network import prune
from gcis.prompts import PromptEmbeddings


@pytest.fixture()
def embeddings():
    vectors = torch.nn.functional.normalize(torch.randn(3, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    return PromptEmbeddings(encoder="test", names=["liver", "spleen", "aorta"], vectors=vectors)


def test_checkpoint_round_trip(tmp_path, embeddings):
    checkpoint = new_checkpoint("tiny", embeddings)
    checkpoint.trained_tasks = ["liver"]
    save_checkpoint(tmp_path / "model.pt", checkpoint, training_state={"epoch": 3})
    loaded, state = load_checkpoint(tmp_path / "model.pt")
    image = torch.randn(1, 1, 32, 32, 32)
    prompts = embeddings.get(["liver", "aorta"])
    with torch.inference_mode():
        expected = checkpoint.model.eval()(image, prompts)
        actual = loaded.model(image, prompts)
    assert torch.equal(expected, actual)
    assert loaded.trained_tasks == ["liver"]
    assert state == {"epoch": 3}


def test_pruned_round_trip(tmp_path, embeddings):
    model = new_checkpoint("tiny", embeddings).model.eval()
    pruned = prune(model, embeddings.get("spleen")[0])
    save_pruned(tmp_path / "spleen.pt", pruned, "spleen")
    loaded, task = load_pruned(tmp_path / "spleen.pt")
    image = torch.randn(1, 1, 32, 32, 32)
    with torch.inference_mode():
        assert torch.equal(pruned(image), loaded(image))
    assert task == "spleen"


def test_missing_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.pt"):
        load_checkpoint(tmp_path / "model.pt")


def test_corrupt_weights_file(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(path)


def test_pruned_file_is_not_a_checkpoint(tmp_path, embeddings):
    model = new_checkpoint("tiny", embeddings).model
    save_pruned(tmp_path / "p.pt", prune(model, embeddings.get("liver")[0]), "liver")
    with pytest.raises(ValueError, match="expected 'gcis-checkpoint'"):
        load_checkpoint(tmp_path / "p.pt")
