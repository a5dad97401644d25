"""Few-shot adaptation: start a task from the sub-pathways its prompt routes to and fine-tune them.

Routing is hard, so the prompt of a new task picks one sub-pathway per AP module. The
adapted model is that pruned task network. Its 7 sub-pathways, deconvolutions and
head are fine-tuned on a few labelled cases, and the Swin encoder and the stem stay
frozen. The full network is left unchanged, so no other task is affected.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from gcis.checkpoint import Checkpoint
from gcis.data.datalist import Case
from gcis.data.geometry import Preprocessing
from gcis.inference.sliding_window import predict_label_map
from gcis.metrics import dice_score
from gcis.network import TaskSpecificNet, prune
from gcis.training.dataset import CropSampler, cache_case
from gcis.training.loss import masked_dice_bce

logger = logging.getLogger(__name__)


@dataclass
class AdaptSettings:
    """Fine-tuning settings; learning rate is for AdamW."""

    steps: int = 200
    batch_size: int = 2
    learning_rate: float = 3e-4
    foreground_fraction: float = 2 / 3
    log_every: int = 10
    seed: int = 0
    device: str = "cpu"


def adapt_task(
    checkpoint: Checkpoint,
    task: str,
    prompt_embedding: torch.Tensor,
    train_cases: list[Case],
    val_cases: list[Case],
    settings: AdaptSettings,
) -> tuple[TaskSpecificNet, dict]:
    """Return the fine-tuned task network and a report with the validation Dice before and after."""
    preprocessing = Preprocessing.from_dict(checkpoint.metadata.get("preprocessing", Preprocessing().to_dict()))
    device = torch.device(settings.device)
    model = prune(checkpoint.model.eval(), prompt_embedding).to(device)
    logger.info("adapting task %s from route %s with %d training cases", task, list(model.route), len(train_cases))

    train = [cache_case(case, preprocessing) for case in train_cases]
    train = [case for case in train if task in case.annotated]
    if not train:
        raise ValueError(f"no training case has task {task!r} annotated; check the datalist's labels")
    val = [c for c in (cache_case(case, preprocessing) for case in val_cases) if task in c.annotated]

    for module in (model.encoder, model.stem):
        module.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate)
    sampler = CropSampler(model.config.roi_size, settings.foreground_fraction, settings.seed)
    rng = np.random.default_rng(settings.seed + 1)

    report = {"task": task, "route": list(model.route), "train_cases": len(train), "val_cases": len(val)}
    report["val_dice_before"] = _validate(model, val, task, device)
    start = time.perf_counter()
    for step in range(1, settings.steps + 1):
        model.train()
        model.encoder.eval()
        cases = [train[i] for i in rng.integers(len(train), size=settings.batch_size)]
        crops = [sampler.sample(case) for case in cases]
        images = torch.from_numpy(np.stack([image for image, _ in crops])[:, None]).to(device)
        targets = np.stack([(label == case.task_value(task))[None] for case, (_, label) in zip(cases, crops)])
        targets = torch.from_numpy(targets.astype(np.float32)).to(device)
        loss = masked_dice_bce(model(images), targets, torch.ones(len(cases), 1, device=device))

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % settings.log_every == 0 or step == settings.steps:
            elapsed = time.perf_counter() - start
            logger.info("adapt %s step %d/%d loss %.4f, %.0f s", task, step, settings.steps, float(loss.detach()), elapsed)

    report["val_dice_after"] = _validate(model, val, task, device)
    report["minutes"] = round((time.perf_counter() - start) / 60, 2)
    return model.eval(), report


def _validate(model: TaskSpecificNet, cases, task: str, device) -> float | None:
    if not cases:
        return None
    model.eval()
    scores = []
    for case in cases:
        prediction = predict_label_map(model, case.image, [1], model.config.roi_size, overlap=0.0, device=device)
        scores.append(dice_score(prediction == 1, case.label == case.task_value(task)))
    return float(np.mean(scores))
