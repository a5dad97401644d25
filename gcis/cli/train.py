"""`gcis train`: train or fine-tune gCIS weights from a datalist."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import torch

from gcis.data.datalist import load_datalist
from gcis.network import preset_names
from gcis.training.trainer import BEST, PRECISIONS, GCISTrainer, TrainingSettings

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train gCIS weights on a datalist of partially labelled CT")
    parser.add_argument("--datalist", required=True, help="datalist JSON with a 'training' and optionally a 'validation' section")
    parser.add_argument("-o", "--output", required=True, help="run folder for last.pt, best.pt and history.json")
    parser.add_argument("--preset", default="small", choices=preset_names(), help="network size preset")
    parser.add_argument("--epochs", type=int, default=20, help="number of epochs")
    parser.add_argument("--steps-per-epoch", type=int, help="steps per epoch (default: training cases / batch size)")
    parser.add_argument("--batch-size", type=int, default=2, help="crops per step")
    parser.add_argument("--learning-rate", type=float, default=5e-4, help="peak AdamW learning rate")
    parser.add_argument("--max-tasks", type=int, default=8, help="most tasks decoded per step")
    parser.add_argument("--max-minutes", type=float, help="stop and save after this many minutes (resume later)")
    parser.add_argument("--resume", action="store_true", help="continue from last.pt in the run folder")
    parser.add_argument("--init-weights", help="checkpoint to fine-tune instead of random initialisation")
    parser.add_argument(
        "--init-encoder", help="checkpoint whose Swin encoder and stem start a network with a new decoder"
    )
    parser.add_argument(
        "--widen-decoder",
        type=int,
        nargs=7,
        metavar="WIDTH",
        help="channels of the 7 AP modules to widen the --init-weights network to, each a multiple of its "
        "trained width; the widened network starts with the same logits",
    )
    parser.add_argument("--sub-pathways", type=int, help="override the preset's sub-pathways per AP module (1: no routing)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="bf16: run the forward passes in bfloat16 autocast, faster on CPUs with bfloat16 units such as Intel Sapphire Rapids",
    )
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--roi-size", type=int, nargs=3, help="override the preset's crop size (z y x voxels)")
    parser.add_argument(
        "--routing-noise-until",
        type=float,
        default=0.5,
        help="fraction of the steps over which the Gumbel routing noise decays from 1 to 0 (0: no noise)",
    )
    parser.add_argument(
        "--freeze-routes",
        action="store_true",
        help="keep the routers fixed so that each task keeps its current sub-pathways (needs --routing-noise-until 0)",
    )
    parser.add_argument(
        "--task-weight",
        action="append",
        default=[],
        metavar="TASK=WEIGHT",
        help="make organ-centred crops centre on TASK WEIGHT times as often as on other tasks (repeatable)",
    )
    parser.add_argument(
        "--centre-task-first",
        action="store_true",
        help="always decode the task each crop is centred on, before the other tasks in the crops",
    )
    parser.add_argument("--validate-every", type=int, default=1, help="epochs between validations")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--export", help="copy the best checkpoint to this file when training ends")
    parser.set_defaults(run=run)


def parse_task_weights(values: list[str]) -> dict[str, float]:
    """Parse ["esophagus=2", ...] into {"esophagus": 2.0, ...}. The error for a malformed item quotes that item."""
    weights = {}
    for item in values:
        name, separator, weight = item.rpartition("=")
        try:
            value = float(weight)
        except ValueError:
            value = -1.0
        if not separator or not name.strip() or not math.isfinite(value) or value <= 0:
            raise SystemExit(f"--task-weight {item!r}: expected TASK=WEIGHT with a positive finite number, e.g. esophagus=2")
        weights[name.strip()] = value
    return weights


def run(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    train_cases = load_datalist(args.datalist, "training")
    content = json.loads(Path(args.datalist).read_text(encoding="utf-8"))
    val_cases = load_datalist(args.datalist, "validation") if "validation" in content else []

    overrides = {"roi_size": args.roi_size} if args.roi_size else {}
    if args.sub_pathways:
        overrides["sub_pathways"] = args.sub_pathways
    settings = TrainingSettings(
        preset=args.preset,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        max_tasks_per_step=args.max_tasks,
        max_minutes=args.max_minutes,
        validate_every=args.validate_every,
        routing_noise_until=args.routing_noise_until,
        freeze_routes=args.freeze_routes,
        task_weights=parse_task_weights(args.task_weight),
        centre_task_first=args.centre_task_first,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        init_weights=args.init_weights,
        init_encoder=args.init_encoder,
        widen_decoder=tuple(args.widen_decoder) if args.widen_decoder else None,
        preset_overrides=overrides,
    )
    trainer = GCISTrainer(settings, train_cases, val_cases, args.output, resume=args.resume)
    trainer.run()

    best = Path(args.output) / BEST
    if args.export and best.is_file():
        Path(args.export).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(best, args.export)
        logger.info("exported %s to %s", best, args.export)
    return 0
