"""`gcis segment`: segment a CT file or DICOM series into one label map in the input's geometry."""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

from gcis.cli.segmenter_options import add_segmenter_arguments, positive_int, segmenter_settings, segmenter_weights
from gcis.data.geometry import read_volume
from gcis.inference import DEFAULT_WINDOW_BATCH, Segmenter
from gcis.inference.outputs import write_result
from gcis.prompts import DEFAULT_TEXT_ENCODER

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("segment", help="segment a CT (NIfTI, NRRD, MHA or DICOM series folder)")
    parser.add_argument("input", help="CT volume file or folder of one DICOM series")
    parser.add_argument("-o", "--output", required=True, help="output folder for labels.nii.gz and labels.json")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--task", action="append", help="task name, synonym or free text; repeat for several")
    choice.add_argument("--all", action="store_true", help="all tasks the weights were trained on (the default)")
    add_segmenter_arguments(parser)
    parser.add_argument(
        "--batch-size", type=positive_int, default=DEFAULT_WINDOW_BATCH,
        help=f"windows per network call (default: {DEFAULT_WINDOW_BATCH})",
    )
    parser.add_argument("--masks", action="store_true", help="also write one binary mask per task found")
    parser.add_argument("--allow-untrained", action="store_true", help="segment catalogue tasks the weights were not trained on")
    parser.add_argument("--text-encoder", default=DEFAULT_TEXT_ENCODER, help="text model used to match free-text prompts")
    parser.set_defaults(run=run)


def run(args) -> int:
    segmenter = Segmenter.from_weights(
        segmenter_weights(args), batch_size=args.batch_size, text_encoder=args.text_encoder, **segmenter_settings(args)
    )
    # Check the output and resolve the tasks before reading the image, so these fail before any compute.
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise ValueError(f"output {output} is a file, not a folder; give a folder path with -o")
    tasks = segmenter.resolve_tasks(args.task, allow_untrained=args.allow_untrained)
    image = read_volume(args.input)

    with tqdm(desc="sliding window", unit="window", disable=None) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = segmenter.segment(image, tasks, source=str(args.input), progress=progress)

    output.mkdir(parents=True, exist_ok=True)
    write_result(result, output, masks=args.masks)
    print(f"wrote {output / 'labels.nii.gz'}: {len(result.labels)} of {len(tasks)} tasks found")
    return 0
