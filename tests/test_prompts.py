"""Prompt encoding (offline text models) and prompt-to-task resolution."""

from __future__ import annotations

import socket

import pytest
import torch

from gcis.catalogue import load_catalogue
from gcis.prompts import AmbiguousPromptError, PromptResolver, TextEncoder, UnknownPromptError, embed_catalogue


@pytest.fixture(scope="module")
def resolver(text_encoder):
    return PromptResolver(load_catalogue(), encoder_factory=lambda: text_encoder)


def block_network(monkeypatch) -> None:
    def reject_connection(*args, **kwargs):
        raise OSError("network access is blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", reject_connection)
    monkeypatch.setattr(socket, "create_connection", reject_connection)


def test_default_encoder_loads_offline(monkeypatch):
    block_network(monkeypatch)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    encoder = TextEncoder()
    vectors = encoder.embed(["liver", "left kidney"])
    assert vectors.shape == (2, 384)
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_similar_prompts_are_close(text_encoder):
    liver, hepatic, femur = text_encoder.embed(["liver", "the liver", "femur"])
    assert float(liver @ hepatic) > float(liver @ femur)


@pytest.mark.parametrize("prompt", ["Left Kidney", "kidney left", "L kidney", "kidney_left", "LEFT KIDNEY"])
def test_left_kidney_spellings(resolver, prompt):
    resolution = resolver.resolve(prompt)
    assert resolution.task.name == "kidney_left"
    assert resolution.method == "exact"


def test_right_kidney_not_left(resolver):
    assert resolver.resolve("right kidney").task.name == "kidney_right"


@pytest.mark.parametrize(
    ("prompt", "name"),
    [("Brainstem", "brainstem"), ("SpinalCord", "spinal_cord"), ("LeftParotid", "parotid_gland_left"),
     ("RightParotid", "parotid_gland_right"), ("Esophagus", "esophagus"), ("Larynx", "larynx"),
     ("Mandible", "mandible")],
)
def test_openkbp_names(resolver, prompt, name):
    assert resolver.resolve(prompt).task.name == name


@pytest.mark.parametrize("prompt", ["parotid", "the parotid gland"])
def test_prompt_without_side_rejected(resolver, prompt):
    with pytest.raises(AmbiguousPromptError, match="add left or right") as caught:
        resolver.resolve(prompt)
    assert sorted(caught.value.suggestions) == ["parotid_gland_left", "parotid_gland_right"]


def test_prompt_with_side_resolved(resolver):
    assert resolver.resolve("the left parotid").task.name == "parotid_gland_left"


def test_free_text_by_embedding(resolver):
    resolution = resolver.resolve("the liver")
    assert resolution.task.name == "liver"
    assert resolution.method == "embedding"
    assert resolution.similarity >= resolver.threshold


def test_unknown_prompt_lists_closest(resolver):
    with pytest.raises(UnknownPromptError, match="closest tasks") as caught:
        resolver.resolve("banana bread")
    assert 3 <= len(caught.value.suggestions) <= 6
    assert "banana bread" in str(caught.value)


def test_typo_suggests_spelling_match(resolver):
    with pytest.raises(UnknownPromptError) as caught:
        resolver.resolve("livr")
    assert "liver" in caught.value.suggestions


def test_unknown_prompt_without_encoder():
    resolver = PromptResolver(load_catalogue())
    with pytest.raises(UnknownPromptError, match="kidney_left"):
        resolver.resolve("kidny left")


def test_empty_prompt(resolver):
    with pytest.raises(UnknownPromptError, match="empty"):
        resolver.resolve("  ")


def test_catalogue_embeddings_cover_all_tasks(text_encoder):
    catalogue = load_catalogue()
    table = embed_catalogue(text_encoder, catalogue)
    assert table.names == catalogue.names()
    assert table.get("liver").shape == (1, 384)


def test_missing_encoder_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        TextEncoder(tmp_path / "nothing")


def write_tiny_clip(folder):
    """Save a randomly initialised 2-layer CLIP text tower with a byte-level vocabulary."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    tokenizer = CLIPTokenizer(vocab={token: i for i, token in enumerate(vocab)}, merges=[])
    config = CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, projection_dim=24, max_position_embeddings=64,
        bos_token_id=len(vocab) - 2, eos_token_id=len(vocab) - 1, pad_token_id=len(vocab) - 1,
    )
    torch.manual_seed(0)
    CLIPTextModelWithProjection(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def test_clip_text_tower_by_path(tmp_path, monkeypatch):
    write_tiny_clip(tmp_path)
    block_network(monkeypatch)
    encoder = TextEncoder(tmp_path)
    assert encoder.pooling == "clip"
    assert encoder.dim == 24
    assert encoder.embed(["left kidney", "liver"]).shape == (2, 24)
