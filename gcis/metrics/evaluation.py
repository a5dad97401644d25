"""Per-case, per-task scores of a predicted label map against a reference label map."""

from __future__ import annotations

import math

import numpy as np

from gcis.catalogue import Task
from gcis.metrics.distance import hausdorff_distance_95
from gcis.metrics.overlap import dice_score
from gcis.metrics.topology import topology_scores

TOPOLOGY_KEYS = ("cldice", "topology_precision", "topology_sensitivity")


def evaluate_case(
    case_id: str,
    prediction: np.ndarray,
    reference: np.ndarray,
    tasks: list[tuple[Task, int]],
    spacing: tuple[float, ...],
) -> list[dict]:
    """Score each (task, reference label value) pair; prediction values are catalogue ids.

    Returns one row per task with Dice, HD95 (mm) and, for tubular tasks, clDice and
    the topology scores.
    """
    rows = []
    for task, value in tasks:
        predicted = prediction == task.id
        expected = reference == value
        row = {
            "case": case_id,
            "task": task.name,
            "dice": dice_score(predicted, expected),
            "hd95_mm": hausdorff_distance_95(predicted, expected, spacing),
        }
        if task.tubular:
            row.update(topology_scores(predicted, expected))
        rows.append(row)
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Return one row per task with the number of cases and the mean of each score (finite HD95 only)."""
    tasks = sorted({row["task"] for row in rows})
    summary = []
    for task in tasks:
        task_rows = [row for row in rows if row["task"] == task]
        finite_hd = [row["hd95_mm"] for row in task_rows if math.isfinite(row["hd95_mm"])]
        entry = {
            "task": task,
            "cases": len(task_rows),
            "dice": float(np.mean([row["dice"] for row in task_rows])),
            "hd95_mm": float(np.mean(finite_hd)) if finite_hd else math.inf,
        }
        for key in TOPOLOGY_KEYS:
            values = [row[key] for row in task_rows if key in row]
            if values:
                entry[key] = float(np.mean(values))
        summary.append(entry)
    return summary
