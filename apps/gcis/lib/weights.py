"""The weights that the app serves: the shipped file, or the last fine-tuned file that training published.

Layout under the model folder (``--conf model_dir``, default ``<app>/model``)::

    gcis.pt                        published fine-tuned weights; served when present
    gcis_rollback/gcis-<time>.pt   each published file that a later publish replaced
    gcis_train/run-<time>/         one training run: best.pt, history.json, summary.json

Rolling back means copying a file from ``gcis_rollback/`` over ``gcis.pt``, or deleting
``gcis.pt`` to serve the shipped weights again. Infer tasks notice the change by the file's
modification time and reload, without a server restart.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path

from gcis.catalogue import Task
from gcis.inference import DEFAULT_WINDOW_BATCH, Segmenter
from gcis.prompts import Resolution

logger = logging.getLogger(__name__)

PUBLISHED_NAME = "gcis.pt"
ROLLBACK_FOLDER = "gcis_rollback"
TRAIN_FOLDER = "gcis_train"


class GCISWeights:
    """Find, load and publish the app's weights; one shared Segmenter per weights file version."""

    def __init__(
        self,
        shipped: str | os.PathLike,
        model_dir: str | os.PathLike,
        device: str = "cpu",
        overlap: float = 0.25,
        batch_size: int = DEFAULT_WINDOW_BATCH,
        text_encoder: str | None = None,
    ):
        self.shipped = Path(shipped)
        self.model_dir = Path(model_dir)
        self.device = device
        self.overlap = overlap
        self.batch_size = batch_size
        self.text_encoder = text_encoder
        self._lock = threading.Lock()
        self._segmenter: Segmenter | None = None
        self._version: tuple[str, int] | None = None

    @property
    def published(self) -> Path:
        return self.model_dir / PUBLISHED_NAME

    @property
    def rollback_dir(self) -> Path:
        return self.model_dir / ROLLBACK_FOLDER

    @property
    def train_dir(self) -> Path:
        return self.model_dir / TRAIN_FOLDER

    def active_path(self) -> Path:
        """Return the published file if training has published one, else the shipped file."""
        return self.published if self.published.is_file() else self.shipped

    def version(self) -> str:
        """Return an id of the active weights (path and modification time) for cached scores."""
        path = self.active_path()
        return f"{path}@{path.stat().st_mtime_ns}" if path.is_file() else f"{path}@missing"

    def segmenter(self) -> Segmenter:
        """Return the Segmenter of the active weights, loading it again when the file changed."""
        path = self.active_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"weights file {path} not found; set --conf weights to a gCIS checkpoint "
                "(the shipped file is bundle/models/model.pt)"
            )
        version = (str(path), path.stat().st_mtime_ns)
        with self._lock:
            if self._segmenter is None or self._version != version:
                options = {"device": self.device, "overlap": self.overlap, "batch_size": self.batch_size}
                if self.text_encoder:
                    options["text_encoder"] = self.text_encoder
                start = time.perf_counter()
                self._segmenter = Segmenter.from_weights(path, **options)
                self._version = version
                logger.info("loaded weights %s on %s in %.1f s", path, self.device, time.perf_counter() - start)
            return self._segmenter

    def trained_tasks(self) -> list[Task]:
        """Return the tasks the active weights were trained on, or [] when no weights file exists."""
        if not self.active_path().is_file():
            return []
        return self.segmenter().trained_tasks

    def resolve_tasks(self, prompts: list[str] | None) -> list[Task]:
        """Return the tasks of prompts, all trained tasks for None (see Segmenter.resolve_tasks).

        The lock serialises resolution because PromptResolver builds its phrase table lazily
        and is not safe for two threads at once.
        """
        segmenter = self.segmenter()
        with self._lock:
            return segmenter.resolve_tasks(prompts)

    def resolve_prompts(self, prompts: list[str]) -> list[Resolution]:
        """Match free-text prompts to catalogue tasks (see PromptResolver.resolve_all), under the same lock."""
        segmenter = self.segmenter()
        with self._lock:
            return segmenter.resolver.resolve_all(prompts)

    def publish(self, candidate: str | os.PathLike) -> Path | None:
        """Make `candidate` the served weights; return where the replaced published file went, if any.

        The candidate is copied next to the published file and renamed over it, so a reader never
        sees half a file.
        """
        self.model_dir.mkdir(parents=True, exist_ok=True)
        staged = self.published.with_name(PUBLISHED_NAME + ".new")
        shutil.copyfile(candidate, staged)

        kept = None
        if self.published.is_file():
            self.rollback_dir.mkdir(parents=True, exist_ok=True)
            kept = self.rollback_dir / f"gcis-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9:09d}.pt"
            shutil.copy2(self.published, kept)
        os.replace(staged, self.published)
        logger.info("published %s as %s%s", candidate, self.published, f"; previous weights kept as {kept}" if kept else "")
        return kept
