"""Fine-tune the active gCIS weights on the final labels of the datastore; publish only without a Dice drop.

Steps of one training request:

1. List every image with a final label (lib.datastores.local.labelled_cases). Each label may
   annotate only some structures; the others give no loss (gcis.training partial labels).
2. Split off ``val_split`` of the cases for validation (at least one). With a single labelled
   case, that case is used for both training and validation and a warning is logged.
3. Run gcis.training.GCISTrainer from the active weights, with their preprocessing. Before the
   first step it scores the active weights on the validation cases (the baseline). After each
   epoch it scores the new weights the same way (mean Dice on the model grid) and keeps the best.
4. Publish the best new weights only if their mean validation Dice is at least the baseline.
   Publishing keeps the replaced file for rollback (lib.weights).

Request parameters (with the defaults of ``--conf``): ``max_epochs``, ``steps_per_epoch``
(0: one pass over the training cases), ``train_batch_size``, ``learning_rate``, ``val_split``
and ``max_minutes`` (0: no time limit).
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict

import numpy as np
from fastapi import HTTPException
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.train import TrainTask

from gcis.catalogue import TaskCatalogue
from gcis.checkpoint import load_checkpoint
from gcis.data.geometry import Preprocessing
from gcis.training.trainer import BEST, LAST, GCISTrainer, TrainingSettings
from lib.datastores.local import labelled_cases
from lib.weights import GCISWeights

logger = logging.getLogger(__name__)

SUMMARY = "summary.json"
DEFAULTS = {
    "max_epochs": 10,
    "steps_per_epoch": 0,
    "train_batch_size": 2,
    "learning_rate": 1e-4,
    "val_split": 0.2,
    "max_minutes": 0.0,
}


class BaselineTrainer(GCISTrainer):
    """GCISTrainer that also scores the starting weights on the validation cases before training."""

    baseline: dict[str, float]

    def build(self) -> None:
        super().build()
        self.baseline = self.validate()


@dataclass
class Decision:
    """Whether the new weights replace the served ones, and why."""

    publish: bool
    reason: str


def decide(baseline: dict[str, float], best_mean: float) -> Decision:
    """Return whether to publish: yes when the new mean validation Dice is at least the baseline's, no without scores."""
    if not baseline:
        return Decision(False, "no validation case annotates a trained structure, so the Dice cannot be compared")
    baseline_mean = float(np.mean(list(baseline.values())))
    if best_mean >= baseline_mean:
        return Decision(True, f"validation mean Dice {best_mean:.4f} >= {baseline_mean:.4f} of the served weights")
    return Decision(False, f"validation mean Dice {best_mean:.4f} < {baseline_mean:.4f} of the served weights")


def split_cases(cases: list, val_split: float, seed: int = 0) -> tuple[list, list]:
    """Split cases into (train, validation); one case serves as both."""
    if len(cases) == 1:
        logger.warning("only one labelled image: it is used for both training and validation")
        return list(cases), list(cases)
    shuffled = list(cases)
    random.Random(seed).shuffle(shuffled)
    count = min(len(cases) - 1, max(1, int(round(val_split * len(cases)))))
    return shuffled[count:], shuffled[:count]


class GCISFineTune(TrainTask):
    """MONAI Label train task for gCIS; see the module docstring for the steps."""

    def __init__(self, weights: GCISWeights, catalogue: TaskCatalogue, defaults: Dict[str, Any] | None = None,
                 device: str = "cpu"):
        super().__init__("Fine-tune gCIS on the final labels (partial labels allowed)")
        self.weights = weights
        self.catalogue = catalogue
        self.defaults = {**DEFAULTS, **(defaults or {})}
        self.device = device

    def config(self) -> Dict[str, Any]:
        return dict(self.defaults)

    def stats(self) -> Dict[str, Any]:
        """Return the summary of the last training run, or {} before the first one."""
        runs = sorted(self.weights.train_dir.glob(f"run-*/{SUMMARY}"))
        return json.loads(runs[-1].read_text()) if runs else {}

    def __call__(self, request: Dict[str, Any], datastore: Datastore) -> Dict[str, Any]:
        options = self._options(request)
        cases = labelled_cases(datastore, self.catalogue)
        if not cases:
            raise HTTPException(status_code=400, detail="no image has a final label yet; save labels before training")
        train_cases, val_cases = split_cases(cases, options["val_split"])

        start_weights = self.weights.active_path()
        checkpoint, _ = load_checkpoint(start_weights)
        settings = TrainingSettings(
            preset=checkpoint.metadata.get("preset", TrainingSettings.preset),
            epochs=options["max_epochs"],
            steps_per_epoch=options["steps_per_epoch"] or None,
            batch_size=options["train_batch_size"],
            learning_rate=options["learning_rate"],
            max_minutes=options["max_minutes"] or None,
            device=self.device,
            init_weights=str(start_weights),
            preprocessing=checkpoint.metadata.get("preprocessing", Preprocessing().to_dict()),
        )
        run_dir = self.weights.train_dir / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        logger.info("training run %s: %d training and %d validation cases from %s",
                    run_dir, len(train_cases), len(val_cases), start_weights)

        trainer = BaselineTrainer(settings, train_cases, val_cases, run_dir)
        trainer.run()
        decision = decide(trainer.baseline, trainer.best_dice)
        kept = self.weights.publish(run_dir / BEST) if decision.publish else None
        (run_dir / LAST).unlink(missing_ok=True)  # optimizer state for resuming, which this task never does

        summary = {
            "run": str(run_dir),
            "started_from": str(start_weights),
            "train_cases": [case.case_id for case in train_cases],
            "val_cases": [case.case_id for case in val_cases],
            "baseline_dice": trainer.baseline,
            "best_mean_dice": trainer.best_dice,
            "published": decision.publish,
            "reason": decision.reason,
            "published_path": str(self.weights.published) if decision.publish else None,
            "rollback_path": str(kept) if kept else None,
            "epochs": settings.epochs,
            "steps": trainer.step,
        }
        (run_dir / SUMMARY).write_text(json.dumps(summary, indent=2))
        logger.info("training run %s finished: %s", run_dir, decision.reason)
        return summary

    def _options(self, request: Dict[str, Any]) -> Dict[str, Any]:
        options = {}
        for key, default in self.defaults.items():
            value = request.get(key, default)
            try:
                options[key] = type(default)(value)
            except (TypeError, ValueError) as error:
                raise HTTPException(status_code=400, detail=f"training option {key}={value!r} is not a number") from error
        if options["max_epochs"] < 1 or options["train_batch_size"] < 1 or options["steps_per_epoch"] < 0:
            raise HTTPException(status_code=400, detail="max_epochs and train_batch_size must be >= 1, steps_per_epoch >= 0")
        if not 0.0 < options["val_split"] < 1.0:
            raise HTTPException(status_code=400, detail=f"val_split {options['val_split']} must lie between 0 and 1")
        return options
