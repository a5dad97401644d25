"""Report how much the model grid costs the contours of a folder of OpenKBP cases.

It counts the voxel grids of the cases, then takes each contour label map to the model grid
and back with the same two resampling steps that training and `gcis segment` use. The
Dice of each organ after that round trip is an upper bound on what a perfect network could
score through this grid.

Usage: python bundle/scripts/grid_round_trip.py ../shared/data/openkbp/validation-pats
"""

from __future__ import annotations

import argparse
import collections
import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from gcis.data.geometry import Preprocessing, from_model_grid, label_to_grid, model_grid
from gcis.metrics.overlap import dice_score
from make_training_datalist import OPENKBP_LABELS

logger = logging.getLogger("grid_round_trip")


def round_trip_dice(label: sitk.Image, spacing: tuple[float, float, float]) -> dict[int, float]:
    """Return the Dice of each organ in the label map after resampling to the model grid and back."""
    grid = model_grid(label, spacing)
    on_grid = label_to_grid(label, grid)
    back = sitk.GetArrayFromImage(from_model_grid(on_grid, grid, label))
    original = sitk.GetArrayFromImage(label)

    scores = {}
    for value in OPENKBP_LABELS:
        if (original == value).any():
            scores[value] = dice_score(back == value, original == value)
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of <case>_ct.nii.gz and <case>_oar_label.nii.gz files")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    spacing = Preprocessing().spacing
    labels = sorted(args.folder.glob("*_oar_label.nii.gz"))
    if not labels:
        raise SystemExit(f"no *_oar_label.nii.gz files found in {args.folder}. Pass an OpenKBP split folder.")

    grids = collections.Counter()
    scores: dict[int, list[float]] = collections.defaultdict(list)
    for path in labels:
        label = sitk.ReadImage(str(path))
        grids[(label.GetSize(), tuple(round(s, 1) for s in label.GetSpacing()))] += 1
        for value, dice in round_trip_dice(label, spacing).items():
            scores[value].append(dice)

    logger.info("%d cases; CT grids (size x, y, z; spacing in mm):", len(labels))
    for (size, voxel), count in grids.most_common():
        logger.info("  %3d cases  %s voxels at %s mm", count, " x ".join(map(str, size)), " x ".join(map(str, voxel)))

    logger.info("Dice after the round trip through the %s mm model grid:", " x ".join(map(str, spacing)))
    for value, name in OPENKBP_LABELS.items():
        if scores[value]:
            values = np.array(scores[value])
            logger.info("  %-14s %2d cases  mean %.3f  min %.3f", name, len(values), values.mean(), values.min())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
