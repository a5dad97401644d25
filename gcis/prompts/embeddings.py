"""Prompt embeddings of the catalogue tasks, computed once and stored with the weights."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from gcis.catalogue import Task, TaskCatalogue

logger = logging.getLogger(__name__)


def task_prompt_text(task: Task) -> str:
    """Return the text embedded for a catalogue task: its display name in lower case."""
    return task.display_name.lower()


@dataclass
class PromptEmbeddings:
    """Embedding table: one L2-normalised vector (dim,) per task name, from one text encoder."""

    encoder: str
    names: list[str]
    vectors: torch.Tensor

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.names):
            raise ValueError(
                f"embedding table of shape {tuple(self.vectors.shape)} does not match its {len(self.names)} names"
            )
        self._index = {name: i for i, name in enumerate(self.names)}

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __contains__(self, name: str) -> bool:
        return name in self._index

    def get(self, names: str | list[str]) -> torch.Tensor:
        """Return the vectors (T, dim) of the named tasks, in the given order."""
        if isinstance(names, str):
            names = [names]
        missing = [n for n in names if n not in self._index]
        if missing:
            raise KeyError(f"no stored prompt embedding for {missing}; the table contains {len(self.names)} tasks")
        return self.vectors[[self._index[n] for n in names]]

    def add(self, name: str, vector: torch.Tensor) -> None:
        """Add or replace the vector of one task (used when a new task is adapted)."""
        vector = vector.reshape(1, -1).to(self.vectors.dtype)
        if name in self._index:
            self.vectors[self._index[name]] = vector[0]
            return
        self.vectors = torch.cat([self.vectors, vector], dim=0)
        self.names.append(name)
        self._index[name] = len(self.names) - 1

    def to_dict(self) -> dict:
        return {"encoder": self.encoder, "names": list(self.names), "vectors": self.vectors.clone()}

    @classmethod
    def from_dict(cls, values: dict) -> "PromptEmbeddings":
        return cls(encoder=values["encoder"], names=list(values["names"]), vectors=values["vectors"].float())


def embed_catalogue(encoder, catalogue: TaskCatalogue) -> PromptEmbeddings:
    """Embed every catalogue task with `encoder` (a TextEncoder)."""
    names = [task.name for task in catalogue]
    vectors = encoder.embed([task_prompt_text(task) for task in catalogue])
    logger.info("embedded %d catalogue prompts with %s", len(names), encoder.name)
    return PromptEmbeddings(encoder=encoder.name, names=names, vectors=vectors)
