"""`gcis evaluate`: segment the cases of a datalist and score them against their reference label maps."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from gcis.cli.segmenter_options import add_segmenter_arguments, positive_int, segmenter_settings, segmenter_weights
from gcis.data.datalist import load_datalist
from gcis.inference import Segmenter
from gcis.metrics import summarise
from gcis.metrics.datalist_evaluation import evaluate_datalist, mean_dice, print_table, write_csv

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="score segmentations of a datalist: Dice, HD95, clDice")
    parser.add_argument("--datalist", required=True, help="datalist JSON of images and reference label maps")
    parser.add_argument("--section", default="validation", help="datalist section to evaluate")
    parser.add_argument(
        "--max-cases", type=positive_int, help="score only the first N cases of the section, for a quick check"
    )
    parser.add_argument("--predictions", help="folder of existing results, <case_id>/labels.nii.gz, instead of running the model")
    add_segmenter_arguments(parser)
    parser.add_argument("-o", "--output", help="CSV file of per-case scores; a '-summary' CSV is written beside it")
    parser.add_argument("--json", action="store_true", help="print the per-task summary as JSON")
    parser.set_defaults(run=run)


def run(args) -> int:
    cases = load_datalist(args.datalist, args.section)
    if args.max_cases:
        cases = cases[: args.max_cases]
    segmenter = None
    if not args.predictions:
        segmenter = Segmenter.from_weights(segmenter_weights(args), **segmenter_settings(args))

    rows = evaluate_datalist(cases, segmenter, args.predictions)
    summary = summarise(rows)
    if args.output:
        write_csv(rows, Path(args.output))
        write_csv(summary, Path(args.output).with_name(Path(args.output).stem + "-summary.csv"))
    if args.json:
        print(json.dumps({"tasks": summary, "mean_dice": mean_dice(summary)}, indent=2))
    else:
        print_table(summary)
    return 0
