"""Dice, HD95 and the clDice topology scores on small synthetic masks with known expected values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gcis.catalogue import load_catalogue
from gcis.metrics import dice_score, evaluate_case, hausdorff_distance_95, summarise, topology_scores


def cube(shape=(20, 20, 20), start=5, stop=15) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[start:stop, start:stop, start:stop] = True
    return mask


def tube(shape=(30, 15, 15), length=slice(2, 28)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[length, 6:9, 6:9] = True
    return mask


def test_dice_identical():
    assert dice_score(cube(), cube()) == 1.0


def test_dice_half_overlap():
    shifted = np.roll(cube(), 5, axis=0)
    assert dice_score(cube(), shifted) == pytest.approx(0.5)


def test_dice_both_empty():
    empty = np.zeros((4, 4, 4), dtype=bool)
    assert dice_score(empty, empty) == 1.0


def test_hd95_shift_in_mm():
    shifted = np.roll(cube(), 2, axis=0)
    distance = hausdorff_distance_95(cube(), shifted, spacing=(3.0, 1.0, 1.0))
    assert distance == pytest.approx(6.0)


def test_hd95_one_empty_is_inf():
    assert math.isinf(hausdorff_distance_95(cube(), np.zeros_like(cube()), spacing=(1, 1, 1)))


def test_cldice_identical_tube():
    scores = topology_scores(tube(), tube())
    assert scores["cldice"] == pytest.approx(1.0)
    assert scores["topology_precision"] == pytest.approx(1.0)
    assert scores["topology_sensitivity"] == pytest.approx(1.0)


def test_cldice_broken_tube_loses_sensitivity():
    broken = tube()
    broken[12:18] = False
    scores = topology_scores(broken, tube())
    assert scores["topology_precision"] == pytest.approx(1.0)
    assert scores["topology_sensitivity"] < 0.9
    assert scores["cldice"] < 1.0


def test_cldice_one_empty():
    assert topology_scores(np.zeros_like(tube()), tube())["cldice"] == 0.0


def test_evaluate_case_adds_topology_for_tubular():
    catalogue = load_catalogue()
    aorta, liver = catalogue.get("aorta"), catalogue.get("liver")
    assert aorta.tubular
    assert not liver.tubular
    prediction = np.where(tube(), aorta.id, 0)
    reference = np.where(tube(), 1, 0)
    rows = evaluate_case("case", prediction, reference, [(aorta, 1), (liver, 2)], spacing=(1.0, 1.0, 1.0))
    assert rows[0]["cldice"] == pytest.approx(1.0)
    assert "cldice" not in rows[1]
    summary = summarise(rows)
    assert [row["task"] for row in summary] == ["aorta", "liver"]
    assert summary[1]["dice"] == 1.0
