"""Evaluate a datalist: segment each case (or read a saved result) and score it against its reference."""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from gcis.catalogue import load_catalogue
from gcis.data.datalist import Case
from gcis.data.geometry import read_volume
from gcis.metrics.evaluation import evaluate_case

logger = logging.getLogger(__name__)


def evaluate_datalist(cases: list[Case], segmenter=None, predictions: str | Path | None = None) -> list[dict]:
    """Return per-case, per-task score rows; needs a Segmenter or a folder of <case_id>/labels.nii.gz."""
    if segmenter is None and predictions is None:
        raise ValueError("evaluate_datalist needs a segmenter or a predictions folder")
    catalogue = load_catalogue()
    rows = []
    start = time.perf_counter()
    for number, case in enumerate(cases, start=1):
        reference = sitk.ReadImage(str(case.label))
        present = set(np.unique(sitk.GetArrayFromImage(reference)).tolist())
        annotated = case.annotated if case.annotated is not None else [n for v, n in case.labels.items() if v in present]
        if segmenter is not None:
            annotated = [name for name in annotated if name in segmenter.checkpoint.trained_tasks]
        if not annotated:
            logger.warning("case %s has no annotated task to score; skipped", case.case_id)
            continue
        tasks = [catalogue.get(name) for name in annotated]
        values = {name: value for value, name in case.labels.items()}

        if segmenter is not None:
            image = read_volume(case.image)
            prediction = segmenter.segment(image, tasks, source=case.case_id).label_image
        else:
            prediction = sitk.ReadImage(str(Path(predictions) / case.case_id / "labels.nii.gz"))
        prediction = sitk.Resample(prediction, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)

        spacing = tuple(reversed(reference.GetSpacing()))
        rows += evaluate_case(
            case.case_id,
            sitk.GetArrayFromImage(prediction),
            sitk.GetArrayFromImage(reference),
            [(task, values[task.name]) for task in tasks],
            spacing,
        )
        logger.info("scored case %s (%d of %d, %.0f s so far)", case.case_id, number, len(cases), time.perf_counter() - start)

    return rows


def mean_dice(summary: list[dict]) -> float:
    return float(np.mean([row["dice"] for row in summary])) if summary else math.nan


def print_table(summary: list[dict]) -> None:
    print(f"{'task':<28} {'cases':>5} {'Dice':>7} {'HD95 mm':>8} {'clDice':>7} {'Tprec':>7} {'Tsens':>7}")
    for row in summary:
        extra = "".join(
            f" {row[key]:>7.3f}" if key in row else f" {'-':>7}"
            for key in ("cldice", "topology_precision", "topology_sensitivity")
        )
        print(f"{row['task']:<28} {row['cases']:>5} {row['dice']:>7.3f} {row['hd95_mm']:>8.1f}{extra}")
    print(f"mean Dice over {len(summary)} tasks: {mean_dice(summary):.3f}")


def write_csv(rows: list[dict], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
