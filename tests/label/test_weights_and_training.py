"""Publishing, rollback and the publish decision of the app's training (lib.weights, lib.trainers), without a server."""

from __future__ import annotations

import os

import pytest
from lib.trainers.gcis import decide, split_cases
from lib.weights import GCISWeights


def test_active_weights_switch_to_published(tmp_path):
    shipped = tmp_path / "shipped.pt"
    shipped.write_bytes(b"shipped")
    weights = GCISWeights(shipped, tmp_path / "model")
    assert weights.active_path() == shipped

    candidate = tmp_path / "best.pt"
    candidate.write_bytes(b"first")
    assert weights.publish(candidate) is None  # nothing published before: the shipped file stays as it is
    assert weights.active_path() == weights.published
    assert weights.published.read_bytes() == b"first"
    assert shipped.read_bytes() == b"shipped"


def test_publish_keeps_replaced_weights_for_rollback(tmp_path):
    weights = GCISWeights(tmp_path / "shipped.pt", tmp_path / "model")
    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    first.write_bytes(b"first")
    second.write_bytes(b"second")

    weights.publish(first)
    kept = weights.publish(second)

    assert kept is not None and kept.parent == weights.rollback_dir
    assert kept.read_bytes() == b"first"
    assert weights.published.read_bytes() == b"second"
    assert not list(weights.model_dir.glob("*.new"))


def test_version_changes_when_weights_change(tmp_path):
    shipped = tmp_path / "shipped.pt"
    shipped.write_bytes(b"shipped")
    weights = GCISWeights(shipped, tmp_path / "model")
    before = weights.version()
    os.utime(shipped, ns=(1, 1))
    assert weights.version() != before


def test_segmenter_of_missing_weights_names_the_file(tmp_path):
    weights = GCISWeights(tmp_path / "missing.pt", tmp_path / "model")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        weights.segmenter()


@pytest.mark.parametrize(
    ("baseline", "best", "publish"),
    [
        ({"liver": 0.5, "spleen": 0.7}, 0.6, True),  # equal mean: did not drop
        ({"liver": 0.5, "spleen": 0.7}, 0.65, True),
        ({"liver": 0.5, "spleen": 0.7}, 0.59, False),
        ({}, 0.9, False),  # nothing to compare with
    ],
)
def test_decide_publishes_only_without_dice_drop(baseline, best, publish):
    assert decide(baseline, best).publish is publish


def test_split_cases_keeps_one_validation_case():
    cases = list(range(10))
    train, validation = split_cases(cases, 0.2)
    assert len(validation) == 2
    assert sorted(train + validation) == cases

    train, validation = split_cases([0, 1], 0.2)
    assert len(validation) == 1
    assert len(train) == 1

    train, validation = split_cases([7], 0.2)
    assert train == [7]
    assert validation == [7]
