"""Training loop for gCIS on partially labelled CT: resumable, with progress, validation and a time budget."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from gcis.catalogue import load_catalogue
from gcis.checkpoint import Checkpoint, load_checkpoint, new_checkpoint, save_checkpoint
from gcis.data.datalist import Case
from gcis.data.geometry import Preprocessing
from gcis.inference.sliding_window import predict_label_map
from gcis.metrics import dice_score
from gcis.network import balance_loss
from gcis.network.widening import widen_decoder
from gcis.prompts import DEFAULT_TEXT_ENCODER, TextEncoder, embed_catalogue
from gcis.training.dataset import CachedCase, CropSampler, cache_case
from gcis.training.loss import masked_dice_bce

logger = logging.getLogger(__name__)

LAST = "last.pt"
BEST = "best.pt"
HISTORY = "history.json"
PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainingSettings:
    """Settings of one training run; learning rate is for AdamW, times are wall-clock minutes."""

    preset: str = "small"
    epochs: int = 20
    steps_per_epoch: int | None = None
    batch_size: int = 2
    learning_rate: float = 5e-4
    weight_decay: float = 1e-5
    warmup_fraction: float = 0.02
    max_tasks_per_step: int = 8
    foreground_fraction: float = 2 / 3
    task_weights: dict[str, float] = field(default_factory=dict)
    centre_task_first: bool = False
    balance_weight: float = 0.01
    routing_noise_until: float = 0.5
    freeze_routes: bool = False
    validate_every: int = 1
    max_minutes: float | None = None
    log_every: int = 10
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"
    text_encoder: str = DEFAULT_TEXT_ENCODER
    init_weights: str | None = None
    init_encoder: str | None = None
    # Decoder widths to widen the init_weights network to, keeping its logits (gcis/network/widening.py).
    widen_decoder: tuple[int, ...] | None = None
    widening_noise: float = 0.05
    distributed: bool = False
    preset_overrides: dict = field(default_factory=dict)
    preprocessing: dict = field(default_factory=lambda: Preprocessing().to_dict())


def has_native_bfloat16(device: torch.device) -> bool:
    """True where bfloat16 runs in hardware: any GPU, or a CPU with AVX-512 BF16 or AMX instructions."""
    if device.type != "cpu":
        return True
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def copy_encoder(source: str | Path, checkpoint: Checkpoint, device: torch.device) -> None:
    """Load the Swin encoder of `source` into a new network whose decoder may differ.

    A run that changes the decoder's widths or its number of sub-pathways can so start
    from image features that an earlier run already learned. The full-resolution stem
    is copied too where its width is unchanged.
    """
    source_checkpoint, _ = load_checkpoint(source, device)
    model = checkpoint.model
    try:
        model.encoder.load_state_dict(source_checkpoint.model.encoder.state_dict())
    except RuntimeError as error:
        raise ValueError(
            f"the Swin encoder of {source} does not fit this network: {error}; start from weights "
            f"with feature_size {model.config.feature_size}, depths {list(model.config.depths)} and "
            f"window_size {model.config.window_size}"
        ) from error
    copied = ["Swin encoder"]
    if source_checkpoint.model.config.decoder_channels[5] == model.config.decoder_channels[5]:
        model.stem.load_state_dict(source_checkpoint.model.stem.state_dict())
        copied.append("stem")
    logger.info("copied the %s of %s; the rest starts from random weights", " and ".join(copied), source)


class GCISTrainer:
    """Train a gCIS checkpoint on cases; writes last.pt, best.pt and history.json to `output_dir`."""

    def __init__(
        self,
        settings: TrainingSettings,
        train_cases: list[Case],
        val_cases: list[Case],
        output_dir: str | Path,
        resume: bool = False,
    ):
        self.settings = settings
        self.train_cases = train_cases
        self.val_cases = val_cases
        self.output_dir = Path(output_dir)
        self.resume = resume
        self.preprocessing = Preprocessing.from_dict(settings.preprocessing)
        self.device = torch.device(settings.device)
        self.history: list[dict] = []

    # Set-up

    def build(self) -> None:
        """Cache the data, then build or restore the model, optimizer and schedule."""
        self.rank = 0
        if self.settings.precision not in PRECISIONS:
            raise ValueError(
                f"invalid precision {self.settings.precision!r}: use one of {', '.join(PRECISIONS)}"
            )
        if self.settings.precision == "bf16" and not has_native_bfloat16(self.device):
            # Measured on a 2-core AMD EPYC (Zen 3): no 10 medium-preset steps within 150 s in bf16,
            # against 6.2 s per step in fp32.
            logger.warning(
                "this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX), so precision bf16 is "
                "emulated and slower than fp32 here; use precision fp32 on this machine"
            )
        if self.settings.freeze_routes and self.settings.routing_noise_until > 0:
            raise ValueError(
                f"freeze_routes needs routing_noise_until 0, got {self.settings.routing_noise_until}: "
                "noise would still change the routes (use --routing-noise-until 0)"
            )
        if self.settings.widen_decoder and not self.settings.init_weights:
            raise ValueError(
                f"widen_decoder {tuple(self.settings.widen_decoder)} needs init_weights: only a trained network is "
                "widened (a new network takes its widths from the preset)"
            )
        if self.settings.distributed:
            self._init_distributed()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(self.settings.seed + self.rank)

        state = None
        last = self.output_dir / LAST
        if self.resume and last.is_file():
            self.checkpoint, state = load_checkpoint(last, self.device)
            logger.info("resuming from %s", last)
        elif self.settings.init_weights:
            self.checkpoint, _ = load_checkpoint(self.settings.init_weights, self.device)
            logger.info("fine-tuning from %s", self.settings.init_weights)
            if self.settings.widen_decoder:
                self.checkpoint.model = widen_decoder(
                    self.checkpoint.model, self.settings.widen_decoder, self.settings.widening_noise, self.settings.seed
                )
        else:
            embeddings = embed_catalogue(TextEncoder(self.settings.text_encoder), load_catalogue())
            overrides = dict(self.settings.preset_overrides)
            self.checkpoint = new_checkpoint(self.settings.preset, embeddings, seed=self.settings.seed, **overrides)
            if self.settings.init_encoder:
                copy_encoder(self.settings.init_encoder, self.checkpoint, self.device)
        if "preprocessing" in self.checkpoint.metadata:
            # Fine-tuned or resumed weights keep the model grid they were trained on.
            self.preprocessing = Preprocessing.from_dict(self.checkpoint.metadata["preprocessing"])

        self.steps_per_epoch = self.settings.steps_per_epoch or max(1, len(self.train_cases) // self.settings.batch_size)
        self.total_steps = self.steps_per_epoch * self.settings.epochs
        self.finished = state is not None and int(state["step"]) >= self.total_steps
        if self.finished:
            # Nothing is left to train, so the cases are not read (20 to 50 s for the shipped datalist).
            self.train_data, self.val_data = [], []
            self.trained_tasks = list(self.checkpoint.trained_tasks)
        else:
            self.train_data = self._cache(self.train_cases, "training")
            self.val_data = self._cache(self.val_cases, "validation")
            self.trained_tasks = sorted({task for case in self.train_data for task in case.annotated})
        self.model = self.checkpoint.model.to(self.device, memory_format=torch.channels_last_3d)
        if self.settings.freeze_routes:
            # The routers' margins are small, so more training can move a task to another sub-pathway.
            # The task then loses what its old sub-pathway learned. Frozen routers prevent this.
            for ap_module in self.model.ap_modules:
                ap_module.router.requires_grad_(False)
            logger.info("routers frozen: every task keeps its current route")
        self.network = self.model
        if self.settings.distributed:
            # Sub-pathways that no task of a step takes get no gradient, so DDP must look for unused parameters.
            self.network = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True,
            )
        self.checkpoint.trained_tasks = sorted(set(self.checkpoint.trained_tasks) | set(self.trained_tasks))
        self.task_prompts = self.checkpoint.embeddings.get(self.trained_tasks).to(self.device)

        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=self.settings.learning_rate, weight_decay=self.settings.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._learning_rate_factor)
        unknown = sorted(set(self.settings.task_weights) - set(self.trained_tasks))
        if unknown:
            raise ValueError(
                f"invalid task weight for {', '.join(unknown)}: this run trains no such task. "
                f"Use one of: {', '.join(self.trained_tasks)}"
            )
        self.sampler = CropSampler(
            self.model.config.roi_size,
            self.settings.foreground_fraction,
            self.settings.seed + 100 * self.rank,
            task_weights=self.settings.task_weights,
        )
        self.rng = np.random.default_rng(self.settings.seed + 1 + 100 * self.rank)
        self.step = 0
        self.skipped_steps = 0
        self.best_dice = -1.0
        if state is not None:
            self._restore(state)

    def _init_distributed(self) -> None:
        """Join the process group that torchrun set up; each rank uses the GPU of its LOCAL_RANK."""
        import os

        import torch.distributed as dist

        backend = "nccl" if self.settings.device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
        self.rank = dist.get_rank()
        if backend == "nccl":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(self.device)
        logger.info("rank %d of %d on %s", self.rank, dist.get_world_size(), self.device)

    def _cache(self, cases: list[Case], name: str) -> list[CachedCase]:
        start = time.perf_counter()
        cached = [cache_case(case, self.preprocessing) for case in cases]
        logger.info("cached %d %s cases on the model grid in %.0f s", len(cached), name, time.perf_counter() - start)
        return cached

    def autocast(self) -> torch.autocast:
        """Return the autocast context of the forward passes: bfloat16 where precision is "bf16", else off.

        The loss is still computed in float32. On a 2-core Intel Xeon (Sapphire Rapids), the
        forward and backward passes of a medium-preset step with 3 tasks took 2.2 s instead of 4.6 s.
        """
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.settings.precision == "bf16")

    def _learning_rate_factor(self, step: int) -> float:
        warmup = max(1, int(self.settings.warmup_fraction * self.total_steps))
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, self.total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    # Training

    def run(self) -> Checkpoint:
        """Train until the last epoch or the time budget; return the best checkpoint's model state."""
        self.build()
        if self.finished:
            logger.info("the run in %s finished at step %d of %d; nothing to train", self.output_dir, self.step, self.total_steps)
            return self.checkpoint
        start = time.perf_counter()
        step_times: list[float] = []
        stopped_early = False

        while self.step < self.total_steps:
            epoch = self.step // self.steps_per_epoch
            step_start = time.perf_counter()
            loss = self.train_step()
            step_times.append(time.perf_counter() - step_start)
            self.step += 1

            if self.step % self.settings.log_every == 0 or self.step == self.total_steps:
                seconds = float(np.mean(step_times[-50:]))
                eta = seconds * (self.total_steps - self.step) / 60
                logger.info(
                    "epoch %d/%d step %d/%d loss %.4f lr %.2e %.2f s/step ETA %.0f min",
                    epoch + 1, self.settings.epochs, self.step, self.total_steps, loss,
                    self.optimizer.param_groups[0]["lr"], seconds, eta,
                )

            if self.step % self.steps_per_epoch == 0 and self.rank == 0:
                self.end_epoch(epoch, time.perf_counter() - start)

            budget = self.settings.max_minutes
            if budget is not None and (time.perf_counter() - start) / 60 > budget and self.step < self.total_steps:
                if self.rank == 0:
                    # Validate now, so that the stopped run still leaves a best.pt to export.
                    self.end_epoch(epoch, time.perf_counter() - start, force_validation=True)
                logger.warning(
                    "stopped at step %d of %d after the %.0f-minute budget; rerun with --resume to continue",
                    self.step, self.total_steps, budget,
                )
                stopped_early = True
                break

        if not stopped_early and self.step % self.steps_per_epoch != 0 and self.rank == 0:
            self.end_epoch(self.step // self.steps_per_epoch, time.perf_counter() - start)
        return self.checkpoint

    def train_step(self) -> float:
        self.model.train()
        noise_steps = self.settings.routing_noise_until * self.total_steps
        self.model.routing_noise = max(0.0, 1.0 - self.step / noise_steps) if noise_steps > 0 else 0.0
        images, targets, annotated, tasks = self.sample_batch()
        prompts = self.checkpoint.embeddings.get(tasks).to(self.device)

        with self.autocast():
            logits = self.network(images, prompts)
        loss = masked_dice_bce(logits.float(), targets, annotated)
        if self.settings.balance_weight > 0 and not self.settings.freeze_routes:
            routing = self.model.routing_logits(self.task_prompts)
            balance = torch.stack([balance_loss(routing[:, k]) for k in range(routing.shape[1])]).mean()
            loss = loss + self.settings.balance_weight * balance

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        gradient_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        if torch.isfinite(gradient_norm):
            self.optimizer.step()
        else:
            # A gradient scaler skips such steps too, instead of spreading NaN into the weights.
            self.skipped_steps += 1
            logger.warning("step %d: non-finite gradient for tasks %s; skipped (%d skipped so far)",
                           self.step + 1, ", ".join(tasks), self.skipped_steps)
        self.scheduler.step()
        return float(loss.detach())

    def sample_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
        """Draw crops from random cases; return images, per-task targets, the annotated mask and task names."""
        weights = np.array([case.weight for case in self.train_data], dtype=float)
        chosen = self.rng.choice(len(self.train_data), size=self.settings.batch_size, p=weights / weights.sum())
        cases = [self.train_data[i] for i in chosen]
        draws = [self.sampler.draw(case) for case in cases]
        crops = [(image, label) for image, label, _ in draws]

        tasks_in_crops = []
        other_tasks = []
        for case, (_, label) in zip(cases, crops):
            present = set(np.unique(label).tolist())
            for task in case.annotated:
                bucket = tasks_in_crops if case.task_value(task) in present else other_tasks
                if task not in tasks_in_crops and task not in bucket:
                    bucket.append(task)
        other_tasks = [t for t in other_tasks if t not in tasks_in_crops]
        self.rng.shuffle(tasks_in_crops)
        self.rng.shuffle(other_tasks)
        if self.settings.centre_task_first:
            # A crop centred on a task then trains that task, whenever max_tasks is at least the batch size.
            centre_tasks = list(dict.fromkeys(task for _, _, task in draws if task is not None))
            tasks_in_crops = centre_tasks + [t for t in tasks_in_crops if t not in centre_tasks]
        tasks = (tasks_in_crops + other_tasks)[: self.settings.max_tasks_per_step]
        if not tasks:
            tasks = [self.trained_tasks[self.rng.integers(len(self.trained_tasks))]]

        targets = np.zeros((len(cases), len(tasks), *self.sampler.roi_size), dtype=np.float32)
        annotated = np.zeros((len(cases), len(tasks)), dtype=np.float32)
        for b, (case, (_, label)) in enumerate(zip(cases, crops)):
            for t, task in enumerate(tasks):
                if task in case.annotated:
                    annotated[b, t] = 1.0
                    targets[b, t] = label == case.task_value(task)
        images = torch.from_numpy(np.stack([image for image, _ in crops])[:, None])
        return (
            images.to(self.device).contiguous(memory_format=torch.channels_last_3d),
            torch.from_numpy(targets).to(self.device),
            torch.from_numpy(annotated).to(self.device),
            tasks,
        )

    # Validation and saving

    def validate(self) -> dict[str, float]:
        """Return the mean Dice per task over the validation cases (on the model grid)."""
        self.model.eval()
        scores: dict[str, list[float]] = {}
        catalogue = load_catalogue()
        for case in self.val_data:
            tasks = [t for t in case.annotated if t in self.trained_tasks]
            if not tasks:
                continue
            ids = [catalogue.get(t).id for t in tasks]
            prompts = self.checkpoint.embeddings.get(tasks).to(self.device)
            with self.autocast():
                prediction = predict_label_map(
                    lambda windows: self.model(windows.contiguous(memory_format=torch.channels_last_3d), prompts).float(),
                    case.image, ids, self.model.config.roi_size,
                    overlap=0.0,  # minimum number of windows, because validation only ranks epochs
                    device=self.device,
                )
            for task, task_id in zip(tasks, ids):
                scores.setdefault(task, []).append(dice_score(prediction == task_id, case.label == case.task_value(task)))
        return {task: float(np.mean(values)) for task, values in sorted(scores.items())}

    def end_epoch(self, epoch: int, elapsed: float, force_validation: bool = False) -> None:
        record = {"epoch": epoch + 1, "step": self.step, "minutes": round(elapsed / 60, 2), "skipped_steps": self.skipped_steps}
        last_epoch = self.step >= self.total_steps
        if self.val_data and (force_validation or last_epoch or (epoch + 1) % self.settings.validate_every == 0):
            dice = self.validate()
            mean = float(np.mean(list(dice.values()))) if dice else 0.0
            record.update({"val_mean_dice": mean, "val_dice": dice})
            logger.info("epoch %d validation mean Dice %.4f: %s", epoch + 1, mean,
                        ", ".join(f"{k} {v:.3f}" for k, v in dice.items()))
            if mean > self.best_dice:
                self.best_dice = mean
                self.save(BEST)
        self.history.append(record)
        (self.output_dir / HISTORY).write_text(json.dumps(self.history, indent=2))
        self.save(LAST)
        if not self.val_data:
            self.save(BEST)

    def save(self, name: str) -> None:
        self.checkpoint.metadata.update(
            {
                "preprocessing": self.preprocessing.to_dict(),
                "preset": self.settings.preset,
                "training": {"settings": asdict(self.settings), "steps": self.step, "best_val_mean_dice": self.best_dice},
            }
        )
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "best_dice": self.best_dice,
            "skipped_steps": self.skipped_steps,
            "history": self.history,
            "torch_rng": torch.get_rng_state(),
            "sampler_rng": self.sampler.rng.bit_generator.state,
            "batch_rng": self.rng.bit_generator.state,
        }
        save_checkpoint(self.output_dir / name, self.checkpoint, training_state=state if name == LAST else None)

    def _restore(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.best_dice = float(state["best_dice"])
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.history = list(state["history"])
        torch.set_rng_state(state["torch_rng"])
        self.sampler.rng.bit_generator.state = state["sampler_rng"]
        self.rng.bit_generator.state = state["batch_rng"]
        logger.info("restored training state at step %d (best validation Dice %.4f)", self.step, self.best_dice)
