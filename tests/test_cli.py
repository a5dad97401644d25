"""The `gcis` command line, run as a user runs it: in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run_gcis(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gcis.cli.main", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def test_tasks_json_keys():
    result = run_gcis("tasks", "--json")
    assert result.returncode == 0, result.stderr
    tasks = json.loads(result.stdout)
    assert len(tasks) >= 117
    for key in ("id", "name", "synonyms", "category", "tubular", "snomed"):
        assert key in tasks[0]
    assert {"property_category", "property_type"} <= set(tasks[0]["snomed"])


def test_tasks_table_lists_count():
    result = run_gcis("tasks")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("tasks")


def test_model_info_paper():
    result = run_gcis("model-info", "--preset", "paper", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert abs(info["encoder_params"] - 8.06e6) / 8.06e6 < 0.01
    assert info["ap_modules"] == 7
    assert info["sub_pathways"] == 6
    assert info["decoder_params"] > 0
    assert info["text_encoder"]["params"] > 0


def test_prune_tiny_preset(tmp_path):
    output = tmp_path / "liver.pt"
    result = run_gcis("prune", "--preset", "tiny", "--task", "Liver", "-o", str(output), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["task"] == "liver"
    assert report["max_abs_difference"] < 1e-5
    assert report["pruned_params"] < report["full_params"]
    assert output.is_file()


def test_prune_unknown_task(tmp_path):
    result = run_gcis("prune", "--preset", "tiny", "--task", "banana bread", "-o", str(tmp_path / "x.pt"))
    assert result.returncode == 2
    assert "closest tasks" in result.stderr
    assert not (tmp_path / "x.pt").exists()


def test_prune_without_weights(tmp_path):
    result = run_gcis("prune", "--task", "liver", "-o", str(tmp_path / "x.pt"), cwd=tmp_path)
    assert result.returncode == 2
    assert "--weights" in result.stderr


@pytest.mark.parametrize("command", ["tasks", "model-info", "prune"])
def test_help(command):
    result = run_gcis(command, "--help")
    assert result.returncode == 0
    assert "usage" in result.stdout
