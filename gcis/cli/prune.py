"""`gcis prune`: export the task-specific network of one prompt."""

from __future__ import annotations

import json
import logging

import torch

from gcis.catalogue import load_catalogue
from gcis.checkpoint import count_parameters, save_pruned
from gcis.cli.weights import add_weights_arguments, open_weights
from gcis.network import prune
from gcis.prompts import PromptResolver, TextEncoder

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("prune", help="export a network that keeps only one task's sub-pathways")
    parser.add_argument("--task", required=True, help="catalogue task name, synonym or free-text prompt")
    parser.add_argument("-o", "--output", required=True, help="output file of the pruned network")
    add_weights_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the report as a JSON object")
    parser.set_defaults(run=run)


def run(args) -> int:
    catalogue = load_catalogue()
    resolver = PromptResolver(catalogue, encoder_factory=lambda: TextEncoder(args.text_encoder))
    task = resolver.resolve(args.task).task

    checkpoint = open_weights(args)
    model = checkpoint.model.eval()
    prompt = checkpoint.embeddings.get(task.name)[0]
    pruned = prune(model, prompt)

    # Check the export on one small random volume: the pruned output must equal the full one.
    torch.manual_seed(0)
    image = torch.randn(1, model.config.in_channels, 32, 32, 32)
    with torch.inference_mode():
        difference = (pruned(image) - model(image, prompt.unsqueeze(0))).abs().max().item()

    report = {
        "task": task.name,
        "route": list(pruned.route),
        "full_params": count_parameters(model),
        "pruned_params": count_parameters(pruned),
        "max_abs_difference": difference,
        "output": str(args.output),
    }
    save_pruned(args.output, pruned, task.name, metadata={"source": checkpoint.metadata, "check": report})
    logger.info("pruned task %s to route %s: %s", task.name, report["route"], args.output)

    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"task {task.name}: route {report['route']}")
        print(f"parameters: {report['pruned_params']:,} pruned, {report['full_params']:,} full")
        print(f"max abs logit difference on a random 32^3 volume: {difference:.2e}")
        print(f"written to {args.output}")
    return 0
