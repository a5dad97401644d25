"""The bundle configs run end to end on CPU: train, then infer, then evaluate, with the tiny preset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gcis.catalogue import load_catalogue

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundle"
OPENKBP_LABELS = {"1": "Brainstem", "2": "SpinalCord", "3": "RightParotid", "4": "LeftParotid",
                  "5": "Esophagus", "6": "Larynx", "7": "Mandible"}


def run_bundle(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "monai.bundle", *args]
    if args[0] == "run":
        command += ["--bundle_root", str(BUNDLE)]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=900)


def openkbp_item(folder: Path, case: str) -> dict:
    return {
        "case_id": case,
        "image": str(folder / f"{case}_ct.nii.gz"),
        "label": str(folder / f"{case}_oar_label.nii.gz"),
        "labels": OPENKBP_LABELS,
    }


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, shared_data) -> Path:
    folder = shared_data / "openkbp" / "train-pats"
    run_dir = tmp_path_factory.mktemp("bundle_run")
    datalist = {
        "training": [openkbp_item(folder, "pt_1"), openkbp_item(folder, "pt_2")],
        "validation": [openkbp_item(folder, "pt_3")],
    }
    (run_dir / "datalist.json").write_text(json.dumps(datalist))
    result = run_bundle(
        "run", "--config_file", str(BUNDLE / "configs" / "train.json"),
        "--datalist_file", str(run_dir / "datalist.json"),
        "--output_dir", str(run_dir / "train"),
        "--train#settings#preset", "tiny",
        "--train#settings#init_encoder", "$None",
        "--train#settings#epochs", "1",
        "--train#settings#steps_per_epoch", "2",
        "--train#settings#validate_every", "1",
        "--device", "cpu",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_train_writes_checkpoints(trained_run):
    assert (trained_run / "train" / "best.pt").is_file()
    assert (trained_run / "train" / "last.pt").is_file()
    history = json.loads((trained_run / "train" / "history.json").read_text())
    assert history[-1]["step"] == 2
    assert "val_mean_dice" in history[-1]


def test_inference_writes_label_maps(trained_run, shared_data):
    image = shared_data / "openkbp" / "validation-pats" / "pt_201_ct.nii.gz"
    result = run_bundle(
        "run", "--config_file", str(BUNDLE / "configs" / "inference.json"),
        "--ckpt_path", str(trained_run / "train" / "best.pt"),
        "--datalist", f"['{image}']",
        "--output_dir", str(trained_run / "eval"),
        "--device", "cpu",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (trained_run / "eval" / "pt_201_ct" / "labels.nii.gz").is_file()
    assert (trained_run / "eval" / "pt_201_ct" / "labels.json").is_file()


def test_evaluate_writes_scores(trained_run, tmp_path, shared_data):
    data = tmp_path / "cases"
    data.mkdir()
    for name in ("pt_201_ct.nii.gz", "pt_201_oar_label.nii.gz"):
        (data / name).symlink_to(shared_data / "openkbp" / "validation-pats" / name)
    configs = f"['{BUNDLE / 'configs' / 'inference.json'}','{BUNDLE / 'configs' / 'evaluate.json'}']"
    result = run_bundle(
        "run", "--config_file", configs,
        "--ckpt_path", str(trained_run / "train" / "best.pt"),
        "--dataset_dir", str(data),
        # One non-tubular organ keeps the test short: clDice skeletons of random masks are slow.
        "--validate#label_names", "{'7': 'Mandible'}",
        "--output_dir", str(tmp_path / "eval"),
        "--device", "cpu",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    scores = (tmp_path / "eval" / "scores.csv").read_text().splitlines()
    assert scores[0].startswith("case,task,dice,hd95_mm")
    assert len(scores) > 1


def test_metadata_verifies_offline():
    result = run_bundle(
        "verify_metadata", "--meta_file", str(BUNDLE / "configs" / "metadata.json"),
        "--filepath", str(BUNDLE / "configs" / "metadata_schema.json"),
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_metadata_labels_match_catalogue():
    metadata = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    channel_def = metadata["network_data_format"]["outputs"]["pred"]["channel_def"]
    catalogue = load_catalogue()
    assert channel_def.pop("0") == "background"
    for label_id, name in channel_def.items():
        assert catalogue.get(int(label_id)).name == name
