"""Configuration of the gCIS model: reads the ``--conf`` keys and builds its infer, train and scoring tasks.

``--conf`` keys (all optional; docs/label.md has the table):

- ``weights``: shipped gCIS checkpoint. Default: ``bundle/models/model.pt`` of this repository.
- ``model_dir``: folder for published fine-tuned weights, rollback copies and training runs.
  Default: ``<app>/model``.
- ``device``: ``cpu``, ``cuda`` or ``cuda:N``. Default: ``cuda`` when available, else ``cpu``.
- ``tasks``: comma-separated task names for the automatic model. Default: every trained task.
- ``overlap`` (0.25) and ``sw_batch_size`` (2): sliding-window overlap and windows per batch.
- ``text_encoder``: folder of a Hugging Face text model for free-text prompts. Default: the
  packaged all-MiniLM-L6-v2 encoder.
- ``preload``: ``true`` loads the weights at start-up instead of at the first request.
- ``max_epochs``, ``steps_per_epoch``, ``train_batch_size``, ``learning_rate``, ``val_split``,
  ``max_minutes``: defaults of the training request (lib.trainers.gcis).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
from monailabel.interfaces.config import TaskConfig
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.scoring import ScoringMethod
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.utils.others.generic import strtobool

from gcis.catalogue import load_catalogue
from gcis.inference import DEFAULT_WINDOW_BATCH
from lib.activelearning.uncertainty import GCISUncertainty
from lib.infers.gcis import GCISSegmentation
from lib.scoring.uncertainty import SCORE_KEY, GCISUncertaintyScoring
from lib.trainers.gcis import DEFAULTS as TRAIN_DEFAULTS
from lib.trainers.gcis import GCISFineTune
from lib.weights import GCISWeights

logger = logging.getLogger(__name__)

# apps/gcis/lib/configs/gcis.py -> repository root
REPO_ROOT = Path(__file__).resolve().parents[4]
SHIPPED_WEIGHTS = REPO_ROOT / "bundle" / "models" / "model.pt"


class GCIS(TaskConfig):
    """The gCIS model: infer tasks ``<name>`` (automatic) and ``<name>_prompt``, one trainer, uncertainty."""

    def init(self, name: str, model_dir: str, conf: Dict[str, str], planner: Any, **kwargs):
        super().init(name, model_dir, conf, planner, **kwargs)
        self.catalogue = load_catalogue()
        self.device = conf.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        self.weights = GCISWeights(
            shipped=Path(conf.get("weights") or SHIPPED_WEIGHTS).expanduser().resolve(),
            model_dir=Path(conf.get("model_dir") or model_dir).expanduser().resolve(),
            device=self.device,
            overlap=_number(conf, "overlap", 0.25),
            batch_size=int(_number(conf, "sw_batch_size", DEFAULT_WINDOW_BATCH)),
            text_encoder=conf.get("text_encoder"),
        )
        self.tasks = [t.strip() for t in conf.get("tasks", "").split(",") if t.strip()] or None
        self.train_defaults = {key: _number(conf, key, default) for key, default in TRAIN_DEFAULTS.items()}
        self.path = [str(self.weights.shipped), str(self.weights.published)]

        unknown = [name for name in self.tasks or [] if self.catalogue.find_exact(name) is None]
        if unknown:
            raise ValueError(f"--conf tasks names unknown structures {unknown}; run 'gcis tasks' for the catalogue")
        logger.info("gCIS weights %s (published fine-tuning in %s), device %s",
                    self.weights.shipped, self.weights.model_dir, self.device)
        if not self.weights.active_path().is_file():
            logger.warning("weights file %s not found; inference fails until --conf weights names a checkpoint",
                           self.weights.active_path())
        elif strtobool(conf.get("preload", "false")):
            self.weights.segmenter()

    def infer(self) -> Union[InferTask, Dict[str, InferTask]]:
        return {
            self.name: GCISSegmentation(
                self.weights, prompted=False, tasks=self.tasks,
                description="gCIS: every trained structure (or --conf tasks)",
            ),
            f"{self.name}_prompt": GCISSegmentation(
                self.weights, prompted=True,
                description="gCIS: the structures named by the 'prompt' parameter (names or free text)",
            ),
        }

    def trainer(self) -> Optional[TrainTask]:
        return GCISFineTune(self.weights, self.catalogue, defaults=self.train_defaults, device=self.device)

    def strategy(self) -> Union[None, Strategy, Dict[str, Strategy]]:
        return {SCORE_KEY: GCISUncertainty(self.weights)}

    def scoring_method(self) -> Union[None, ScoringMethod, Dict[str, ScoringMethod]]:
        automatic = GCISSegmentation(self.weights, prompted=False, tasks=self.tasks)
        return {SCORE_KEY: GCISUncertaintyScoring(self.weights, automatic.label_tasks)}


def _number(conf: Dict[str, str], key: str, default: float | int) -> float | int:
    value = conf.get(key)
    if value is None or value == "":
        return default
    try:
        return type(default)(value)
    except ValueError as error:
        raise ValueError(f"--conf {key} {value!r} is not a {type(default).__name__}") from error
