"""Compare connected-piece filters for one task on OpenKBP cases: Dice with all pieces, the largest, or the large ones.

The task is segmented alone, with no piece removed, then scored three ways against the
contour: every piece kept, only the largest piece kept, and every piece of at least
`--min-fraction` of the largest one's size kept.

Usage: python bundle/scripts/compare_piece_filters.py --task esophagus --label-value 5
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from gcis.inference import Segmenter
from gcis.inference.postprocessing import connected_pieces
from gcis.metrics import dice_score

logger = logging.getLogger("compare_piece_filters")


def filtered_masks(prediction: np.ndarray, min_fraction: float) -> dict[str, np.ndarray]:
    """Return the prediction with all pieces, with its largest piece, and with pieces of at least min_fraction of it."""
    pieces, sizes = connected_pieces(prediction)
    if len(sizes) == 1:
        return {"all": prediction, "largest": prediction, "large": prediction}

    large_ids = np.flatnonzero(sizes >= min_fraction * sizes.max())
    return {
        "all": prediction,
        "largest": pieces == int(np.argmax(sizes)),
        "large": np.isin(pieces, large_ids) & prediction,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="bundle/models/model.pt", help="checkpoint to run")
    parser.add_argument("--cases", default="../shared/data/openkbp/validation-pats", help="folder of <case>_ct.nii.gz and <case>_oar_label.nii.gz")
    parser.add_argument("--task", required=True, help="catalogue task to segment, such as esophagus")
    parser.add_argument("--label-value", type=int, required=True, help="value of the task in the OpenKBP label maps (5 esophagus, 2 spinal cord)")
    parser.add_argument("--min-fraction", type=float, default=0.1, help="smallest piece kept by the 'large' filter, as a fraction of the largest")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    segmenter = Segmenter.from_weights(args.weights, overlap=0.0, largest_component=False)
    tasks = segmenter.resolve_tasks([args.task])
    scores: dict[str, list[float]] = {"all": [], "largest": [], "large": []}

    for image_path in sorted(Path(args.cases).glob("*_ct.nii.gz")):
        case_id = image_path.name.removesuffix("_ct.nii.gz")
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(image_path.with_name(f"{case_id}_oar_label.nii.gz"))))
        truth = truth == args.label_value
        if not truth.any():
            continue

        result = segmenter.segment(sitk.ReadImage(str(image_path)), tasks, source=case_id)
        prediction = sitk.GetArrayFromImage(result.label_image) == tasks[0].id
        masks = filtered_masks(prediction, args.min_fraction)
        for name, mask in masks.items():
            scores[name].append(dice_score(mask, truth))
        logger.info(
            "%s: contour %d voxels, prediction %d, largest piece %d; Dice %s", case_id, int(truth.sum()),
            int(prediction.sum()), int(masks["largest"].sum()),
            ", ".join(f"{name} {values[-1]:.3f}" for name, values in scores.items()),
        )

    cases = len(scores["all"])
    summary = ", ".join(f"{name} {np.mean(values):.3f}" for name, values in scores.items())
    print(f"{args.task}, {cases} cases, mean Dice: {summary}")


if __name__ == "__main__":
    main()
