"""`gcis adapt`: fine-tune a task-specific network for a prompt on a few labelled cases."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from gcis.catalogue import load_catalogue
from gcis.checkpoint import load_checkpoint, save_pruned
from gcis.cli.weights import bundle_weights
from gcis.data.datalist import load_datalist
from gcis.prompts import DEFAULT_TEXT_ENCODER, PromptResolver, TextEncoder
from gcis.training.adapt import AdaptSettings, adapt_task

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("adapt", help="fine-tune the sub-pathways a prompt routes to on a few cases")
    parser.add_argument("--prompt", required=True, help="the structure to adapt to (catalogue name, synonym or free text)")
    parser.add_argument("--datalist", required=True, help="datalist JSON; its 'training' cases must label the structure")
    parser.add_argument("-o", "--output", required=True, help="output folder for adapted.pt and report.json")
    parser.add_argument("--bundle", help="bundle folder whose models/model.pt to start from (default: ./bundle)")
    parser.add_argument("--weights", help="checkpoint to start from (overrides --bundle)")
    parser.add_argument("--steps", type=int, default=200, help="fine-tuning steps")
    parser.add_argument("--learning-rate", type=float, default=3e-4, help="AdamW learning rate")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    parser.add_argument("--text-encoder", default=DEFAULT_TEXT_ENCODER, help="text model used for free-text prompts")
    parser.set_defaults(run=run)


def run(args) -> int:
    catalogue = load_catalogue()
    task = PromptResolver(catalogue, encoder_factory=lambda: TextEncoder(args.text_encoder)).resolve(args.prompt).task
    checkpoint, _ = load_checkpoint(args.weights or bundle_weights(args.bundle))
    train_cases = load_datalist(args.datalist, "training")
    content = json.loads(Path(args.datalist).read_text(encoding="utf-8"))
    val_cases = load_datalist(args.datalist, "validation") if content.get("validation") else []

    settings = AdaptSettings(steps=args.steps, learning_rate=args.learning_rate, device=args.device)
    embedding = checkpoint.embeddings.get(task.name)[0]
    model, report = adapt_task(checkpoint, task.name, embedding, train_cases, val_cases, settings)

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    save_pruned(output / "adapted.pt", model, task.name, metadata={"adapt": report, **checkpoint.metadata})
    (output / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0
