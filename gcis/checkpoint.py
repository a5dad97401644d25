"""Saving and loading gCIS weights: the full network with its prompt embeddings, and pruned task networks."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gcis.network import GCISNet, NetworkConfig, TaskSpecificNet, load_preset
from gcis.prompts import PromptEmbeddings

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "gcis-checkpoint"
PRUNED_FORMAT = "gcis-pruned"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A full gCIS network with the stored prompt embeddings of the catalogue and the tasks it was trained on."""

    model: GCISNet
    embeddings: PromptEmbeddings
    trained_tasks: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


def new_checkpoint(preset: str | NetworkConfig, embeddings: PromptEmbeddings, seed: int = 0, **overrides) -> Checkpoint:
    """Build a randomly initialised network sized by a preset name or config, for the given embeddings."""
    config = preset if isinstance(preset, NetworkConfig) else load_preset(preset, **overrides)
    config = config.replace(prompt_dim=embeddings.dim)
    torch.manual_seed(seed)
    return Checkpoint(model=GCISNet(config), embeddings=embeddings)


def save_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint, training_state: dict | None = None) -> Path:
    """Write the checkpoint atomically (temporary file, then rename), so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": FORMAT_VERSION,
        "config": checkpoint.model.config.to_dict(),
        "state_dict": checkpoint.model.state_dict(),
        "embeddings": checkpoint.embeddings.to_dict(),
        "trained_tasks": list(checkpoint.trained_tasks),
        "metadata": dict(checkpoint.metadata),
    }
    if training_state is not None:
        payload["training_state"] = training_state
    temporary = path.with_name(path.name + ".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)
    logger.info("saved checkpoint %s (%d trained tasks)", path, len(checkpoint.trained_tasks))
    return path


def read_payload(path: str | os.PathLike, expected_format: str | None) -> dict:
    """Load a gCIS file's dictionary and check its format (any gCIS format for None), with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise ValueError(f"weights file {path} could not be read ({error}); it is corrupt or not a gCIS file") from error
    accepted = (expected_format,) if expected_format else (CHECKPOINT_FORMAT, PRUNED_FORMAT)
    if not isinstance(payload, dict) or payload.get("format") not in accepted:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"weights file {path} has format {found!r}, expected {' or '.join(map(repr, accepted))}")
    if payload.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"weights file {path} has format version {payload.get('version')}, this gcis reads version {FORMAT_VERSION}"
        )
    return payload


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Checkpoint, dict | None]:
    """Return (checkpoint, training_state or None) from a file written by save_checkpoint."""
    payload = read_payload(path, CHECKPOINT_FORMAT)
    checkpoint = _checkpoint_from_payload(payload, device)
    logger.info("loaded checkpoint %s (%d trained tasks)", path, len(checkpoint.trained_tasks))
    return checkpoint, payload.get("training_state")


def _checkpoint_from_payload(payload: dict, device: str | torch.device) -> Checkpoint:
    model = GCISNet(NetworkConfig.from_dict(payload["config"]))
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    return Checkpoint(
        model=model,
        embeddings=PromptEmbeddings.from_dict(payload["embeddings"]),
        trained_tasks=list(payload.get("trained_tasks", [])),
        metadata=dict(payload.get("metadata", {})),
    )


def save_pruned(path: str | os.PathLike, model: TaskSpecificNet, task: str, metadata: dict | None = None) -> Path:
    """Write a pruned task-specific network."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": PRUNED_FORMAT,
        "version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "route": list(model.route),
        "task": task,
        "state_dict": model.state_dict(),
        "metadata": dict(metadata or {}),
    }
    temporary = path.with_name(path.name + ".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)
    return path


def load_pruned(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[TaskSpecificNet, str]:
    """Return (network, task name) from a file written by save_pruned."""
    model, task, _ = _read_pruned(path)
    return model.to(device).eval(), task


def _read_pruned(path: str | os.PathLike) -> tuple[TaskSpecificNet, str, dict]:
    return _pruned_from_payload(read_payload(path, PRUNED_FORMAT))


def _pruned_from_payload(payload: dict) -> tuple[TaskSpecificNet, str, dict]:
    model = TaskSpecificNet(NetworkConfig.from_dict(payload["config"]), tuple(payload["route"]))
    model.load_state_dict(payload["state_dict"])
    return model, payload["task"], dict(payload.get("metadata", {}))


class SingleTaskAdapter(torch.nn.Module):
    """Give a task-specific network the (image, prompts) interface of GCISNet; prompts only set the task count."""

    def __init__(self, network: TaskSpecificNet):
        super().__init__()
        self.network = network
        self.config = network.config

    def forward(self, image: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        logits = self.network(image)
        return logits.expand(-1, prompts.reshape(-1, self.config.prompt_dim).shape[0], *logits.shape[2:])


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a full checkpoint, or a pruned or adapted task network wrapped as a one-task checkpoint."""
    payload = read_payload(path, None)
    if payload["format"] == CHECKPOINT_FORMAT:
        return _checkpoint_from_payload(payload, device)
    network, task, metadata = _pruned_from_payload(payload)
    embeddings = PromptEmbeddings(encoder="none", names=[task], vectors=torch.zeros(1, network.config.prompt_dim))
    model = SingleTaskAdapter(network).to(device).eval()
    source = metadata.get("source", metadata)
    return Checkpoint(model=model, embeddings=embeddings, trained_tasks=[task], metadata=dict(source))


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
