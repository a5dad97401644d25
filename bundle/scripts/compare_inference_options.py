"""Compare inference options on datalist cases: mirror augmentation and the probability threshold.

Each case is segmented on the model grid twice with the `weighted` blend: as it is,
and with every window mirrored left-right (lateral tasks ask for their counterpart).
The two probability volumes are kept, so each option is scored from them without
running the network again:
- plain: the plain pass alone;
- mirror: the mean of both passes, for every task;
at each threshold in `--thresholds`. One-piece structures keep their largest piece, as
`gcis segment` does by default. Dice is computed on the model grid, where the contours
are resampled by nearest neighbour.

Usage: python bundle/scripts/compare_inference_options.py --datalist runs/shipped_datalist.json --section validation
"""

from __future__ import annotations

import argparse
import csv
import logging
import time
from pathlib import Path

import numpy as np
import torch

from gcis.catalogue import load_catalogue
from gcis.data.datalist import load_datalist
from gcis.data.geometry import label_to_grid, read_volume, to_model_grid
from gcis.inference import Segmenter
from gcis.inference.postprocessing import keep_largest_components
from gcis.inference.sliding_window import label_probabilities, predict_probabilities
from gcis.metrics import dice_score

logger = logging.getLogger("compare_inference_options")


def case_probabilities(segmenter: Segmenter, volume: np.ndarray, tasks, mirror_tasks) -> dict[str, torch.Tensor]:
    """Return the plain and the mirrored pass's probabilities (T, D, H, W) of one volume on the model grid."""
    roi_size = segmenter.roi_size
    plain = segmenter.window_predictor(tasks)
    mirrored = segmenter.window_predictor(mirror_tasks)

    def mirrored_predictor(windows: torch.Tensor) -> torch.Tensor:
        return mirrored(windows.flip(-1)).flip(-1)

    return {
        "plain": predict_probabilities(plain, volume, roi_size, overlap=segmenter.overlap, device=segmenter.device),
        "mirrored": predict_probabilities(
            mirrored_predictor, volume, roi_size, overlap=segmenter.overlap, device=segmenter.device
        ),
    }


def score(probabilities: torch.Tensor, reference: np.ndarray, tasks, values: dict[str, int], threshold: float) -> dict[str, float]:
    """Return each task's Dice of the thresholded, largest-piece label map against the reference."""
    labels = label_probabilities(probabilities, [t.id for t in tasks], threshold)
    keep_largest_components(labels, tasks)
    return {t.name: dice_score(labels == t.id, reference == values[t.name]) for t in tasks}


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Score mirror averaging and probability thresholds on datalist cases. Each case is segmented "
        "twice with the weighted blend (plain and mirrored) and scored on the model grid; the 10 held-out "
        "train-pats take about 10 minutes on a 2-core CPU.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--weights", default="bundle/models/model.pt", help="checkpoint to run")
    parser.add_argument("--datalist", required=True, help="datalist JSON of images and reference label maps")
    parser.add_argument("--section", default="validation", help="datalist section to score")
    parser.add_argument("--overlap", type=float, default=0.25, help="sliding-window overlap, 0 to 0.9")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.3, 0.4, 0.5], help="probability thresholds to score")
    parser.add_argument("-o", "--output", help="CSV of per-case Dice for every option and threshold")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_grad_enabled(False)

    segmenter = Segmenter.from_weights(args.weights, overlap=args.overlap)
    catalogue = load_catalogue()
    cases = load_datalist(args.datalist, args.section)
    rows = []
    start = time.perf_counter()
    for case in cases:
        tasks = [catalogue.get(name) for name in case.annotated if name in segmenter.checkpoint.trained_tasks]
        mirror_tasks = [catalogue.counterpart(t) or t for t in tasks]
        values = {name: value for value, name in case.labels.items()}
        volume, grid = to_model_grid(read_volume(case.image), segmenter.preprocessing)
        reference = label_to_grid(read_volume(case.label), grid)

        passes = case_probabilities(segmenter, volume, tasks, mirror_tasks)
        options = {"plain": passes["plain"], "mirror": (passes["plain"] + passes["mirrored"]) / 2}
        for option, probabilities in options.items():
            for threshold in args.thresholds:
                for task, dice in score(probabilities, reference, tasks, values, threshold).items():
                    rows.append({"case": case.case_id, "option": option, "threshold": threshold, "task": task, "dice": dice})
        logger.info("case %s done, %.0f s so far", case.case_id, time.perf_counter() - start)

    task_names = sorted({row["task"] for row in rows})
    print(f"{'option':<8} {'thr':>4} " + " ".join(f"{name[:10]:>10}" for name in task_names) + f" {'mean':>6}")
    for option in ("plain", "mirror"):
        for threshold in args.thresholds:
            means = [
                np.mean([r["dice"] for r in rows if r["option"] == option and r["threshold"] == threshold and r["task"] == name])
                for name in task_names
            ]
            print(f"{option:<8} {threshold:>4.2f} " + " ".join(f"{m:>10.3f}" for m in means) + f" {np.mean(means):>6.3f}")

    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        with open(args.output, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["case", "option", "threshold", "task", "dice"])
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
