"""`gcis datalist`: build a gCIS datalist from a folder of images and label maps."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from gcis.data.datalist import build_datalist

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("datalist", help="pair images with label maps into a datalist JSON")
    parser.add_argument("--images", required=True, help="folder of CT volumes")
    parser.add_argument("--labels", help="folder of label maps (default: the images folder)")
    parser.add_argument("--image-glob", default="*_ct.nii.gz", help="file pattern of images; '*' is the case id")
    parser.add_argument("--label-glob", default="*_label.nii.gz", help="file pattern of label maps; '*' is the case id")
    parser.add_argument(
        "--label-names",
        required=True,
        help="JSON file or inline JSON object mapping label values to task names or synonyms",
    )
    parser.add_argument("--validation-fraction", type=float, default=0.0, help="share of cases held out for validation")
    parser.add_argument("--seed", type=int, default=0, help="seed of the validation split")
    parser.add_argument("-o", "--output", required=True, help="datalist JSON to write")
    parser.set_defaults(run=run)


def read_label_names(text: str) -> dict[int, str]:
    """Read a value-to-name mapping from a JSON file or inline JSON; non-numeric keys are ignored."""
    path = Path(text)
    values = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else json.loads(text)
    return {int(key): name for key, name in values.items() if str(key).isdigit() and int(key) > 0}


def run(args) -> int:
    names = read_label_names(args.label_names)
    items = build_datalist(args.images, args.labels or args.images, names, args.image_glob, args.label_glob)
    if not items:
        raise ValueError(f"no image matching {args.image_glob!r} in {args.images} has a label map matching {args.label_glob!r}")

    order = np.random.default_rng(args.seed).permutation(len(items))
    held_out = int(round(args.validation_fraction * len(items)))
    datalist = {
        "training": [items[i] for i in sorted(order[held_out:])],
        "validation": [items[i] for i in sorted(order[:held_out])],
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(datalist, indent=1), encoding="utf-8")
    print(f"wrote {args.output}: {len(datalist['training'])} training and {len(datalist['validation'])} validation cases")
    return 0
