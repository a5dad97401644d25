"""Resolve free-text prompts to catalogue tasks: exact or synonym match first, then embedding similarity."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

import torch

from gcis.catalogue import Task, TaskCatalogue, normalise_prompt

logger = logging.getLogger(__name__)

DEFAULT_SIMILARITY_THRESHOLD = 0.7
"""Minimum cosine similarity for an embedding match with the default MiniLM encoder."""


class UnknownPromptError(ValueError):
    """A prompt that matches no catalogue task; `suggestions` contains the closest task names."""

    def __init__(self, prompt: str, suggestions: list[str], detail: str = ""):
        self.prompt = prompt
        self.suggestions = suggestions
        message = f"unknown prompt {prompt!r}: no catalogue task matches it{detail}"
        if suggestions:
            message += f"; closest tasks: {', '.join(suggestions)}"
        message += "; run 'gcis tasks' for the full list"
        super().__init__(message)


class AmbiguousPromptError(UnknownPromptError):
    """A prompt that names no side but matches both sides of a paired structure, such as "parotid"."""

    def __init__(self, prompt: str, tasks: list[Task]):
        self.prompt = prompt
        self.suggestions = [task.name for task in tasks]
        ValueError.__init__(
            self,
            f"ambiguous prompt {prompt!r}: it names no side and matches both {' and '.join(self.suggestions)}; "
            "add left or right",
        )


@dataclass(frozen=True)
class Resolution:
    """A prompt resolved to a task; `method` is "exact" or "embedding", with the cosine similarity for the latter."""

    prompt: str
    task: Task
    method: str
    similarity: float | None = None


class PromptResolver:
    """Map prompts to tasks; the text encoder is created only when a prompt needs embedding similarity."""

    def __init__(
        self,
        catalogue: TaskCatalogue,
        encoder_factory: Callable[[], object] | None = None,
        threshold: float = DEFAULT_SIMILARITY_THRESHOLD,
    ):
        self.catalogue = catalogue
        self.encoder_factory = encoder_factory
        self.threshold = threshold
        self._encoder = None
        # Servers resolve prompts from several threads; the lazy encoder and phrase table are built once.
        self._lock = threading.Lock()
        self._phrase_tasks: list[Task] = []
        self._phrase_vectors: torch.Tensor | None = None

    def resolve(self, prompt: str) -> Resolution:
        """Return the task of one prompt, or raise UnknownPromptError with the closest tasks."""
        if not prompt or not prompt.strip():
            raise UnknownPromptError(prompt, [], detail=" (the prompt is empty)")

        task = self.catalogue.find_exact(prompt)
        if task is not None:
            return Resolution(prompt, task, "exact")

        if self.encoder_factory is None:
            suggestions = [t.name for t in self.catalogue.closest(prompt)]
            raise UnknownPromptError(prompt, suggestions, detail=" by name or synonym")

        similarities = self._similarities(prompt)
        ranked = self._best_per_task(similarities)
        best_task, best_score = ranked[0]
        if best_score >= self.threshold:
            self._check_side(prompt, best_task, ranked)
            logger.info("resolved prompt %r to task %s by embedding similarity %.3f", prompt, best_task.name, best_score)
            return Resolution(prompt, best_task, "embedding", best_score)

        # Spelling matches first (they catch typos that embeddings miss), then the nearest embeddings.
        suggestions = [t.name for t in self.catalogue.closest(prompt, n=3)]
        for task, score in ranked:
            if len(suggestions) >= 6:
                break
            if task.name not in suggestions:
                suggestions.append(f"{task.name} ({score:.2f})")
        raise UnknownPromptError(
            prompt,
            suggestions,
            detail=f" (best embedding similarity {best_score:.2f} is below the threshold {self.threshold:.2f})",
        )

    def resolve_all(self, prompts: list[str]) -> list[Resolution]:
        """Resolve each prompt; the first unknown one raises before any other work."""
        return [self.resolve(p) for p in prompts]

    def _similarities(self, prompt: str) -> torch.Tensor:
        with self._lock:
            if self._encoder is None:
                self._encoder = self.encoder_factory()
            if self._phrase_vectors is None:
                phrases, tasks = [], []
                for task in self.catalogue:
                    for phrase in (task.display_name, *task.synonyms):
                        phrases.append(phrase)
                        tasks.append(task)
                self._phrase_vectors = self._encoder.embed(phrases)
                self._phrase_tasks = tasks
            query = self._encoder.embed([prompt])[0]
        return self._phrase_vectors @ query

    def _check_side(self, prompt: str, task: Task, ranked: list[tuple[Task, float]]) -> None:
        """Raise AmbiguousPromptError when a prompt without a side matches a lateral task and its counterpart."""
        counterpart = self.catalogue.counterpart(task)
        if counterpart is None:
            return

        # normalise_prompt turns l, lt, r and rt into left and right. A word containing a side
        # also counts, for names written without spaces such as "LeftParotid".
        words = normalise_prompt(prompt).split()
        if any("left" in word or "right" in word for word in words):
            return

        scores = {other.id: score for other, score in ranked}
        if scores.get(counterpart.id, 0.0) >= self.threshold:
            raise AmbiguousPromptError(prompt, [task, counterpart])

    def _best_per_task(self, similarities: torch.Tensor) -> list[tuple[Task, float]]:
        best: dict[int, tuple[Task, float]] = {}
        for task, score in zip(self._phrase_tasks, similarities.tolist()):
            if task.id not in best or score > best[task.id][1]:
                best[task.id] = (task, score)
        return sorted(best.values(), key=lambda item: item[1], reverse=True)
