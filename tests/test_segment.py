"""`gcis segment` and the Segmenter on real CT: geometry, orientation and input checks."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from gcis.catalogue import load_catalogue
from gcis.data.geometry import InvalidInputError, check_ct
from gcis.inference import Segmenter
from gcis.inference.postprocessing import keep_largest_components


@pytest.fixture(scope="module")
def openkbp_ct(shared_data) -> sitk.Image:
    return sitk.ReadImage(str(shared_data / "openkbp" / "validation-pats" / "pt_201_ct.nii.gz"))


@pytest.fixture(scope="module")
def segmenter(tiny_checkpoint_file) -> Segmenter:
    return Segmenter.from_weights(tiny_checkpoint_file)


def run_gcis(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gcis.cli.main", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def test_label_map_keeps_input_geometry(segmenter, openkbp_ct):
    result = segmenter.segment(openkbp_ct, segmenter.resolve_tasks(None))
    label = result.label_image
    assert label.GetSize() == openkbp_ct.GetSize()
    assert label.GetSpacing() == pytest.approx(openkbp_ct.GetSpacing())
    assert label.GetDirection() == pytest.approx(openkbp_ct.GetDirection())
    assert label.GetOrigin() == pytest.approx(openkbp_ct.GetOrigin())


def test_lps_and_ras_storage_agree(segmenter, openkbp_ct):
    """The same CT stored with flipped x and y axes (RAS-like) must give the same labels in patient space."""
    ras = sitk.Flip(openkbp_ct, [True, True, False])
    assert ras.GetDirection()[0] == pytest.approx(-openkbp_ct.GetDirection()[0])
    tasks = segmenter.resolve_tasks(None)
    lps_labels = sitk.GetArrayFromImage(segmenter.segment(openkbp_ct, tasks).label_image)
    ras_labels = sitk.GetArrayFromImage(sitk.Flip(segmenter.segment(ras, tasks).label_image, [True, True, False]))
    assert np.mean(lps_labels == ras_labels) > 0.999


def test_window_batch_sizes_agree(segmenter):
    # Batches of several windows take oneDNN's convolutions and one window PyTorch's
    # native ones; the label maps must not depend on that choice.
    volume = np.random.default_rng(0).random((40, 70, 50)).astype(np.float32)
    tasks = segmenter.resolve_tasks(None)
    default = segmenter.batch_size
    try:
        segmenter.batch_size = 1
        single = segmenter.predict_array(volume, tasks)
        segmenter.batch_size = 3
        batched = segmenter.predict_array(volume, tasks)
    finally:
        segmenter.batch_size = default
    assert np.mean(single != batched) < 1e-4


def test_unknown_task_fails_before_compute(segmenter):
    from gcis.prompts import UnknownPromptError

    with pytest.raises(UnknownPromptError, match="closest tasks"):
        segmenter.resolve_tasks(["banana bread"])


def test_untrained_task_rejected(segmenter):
    with pytest.raises(ValueError, match="not among the 5 tasks"):
        segmenter.resolve_tasks(["brainstem"])


def test_largest_component_kept_for_one_piece_organ():
    catalogue = load_catalogue()
    mandible, spinal_cord = catalogue.get("mandible"), catalogue.get("spinal_cord")
    labels = np.zeros((20, 20, 20), dtype=np.int32)
    labels[2:8, 2:8, 2:8] = mandible.id
    labels[15:17, 15:17, 15:17] = mandible.id
    labels[2:6, 12:14, 12:14] = spinal_cord.id
    labels[10:14, 12:14, 12:14] = spinal_cord.id

    keep_largest_components(labels, [mandible, spinal_cord])

    assert (labels == mandible.id).sum() == 6**3
    assert (labels[15:17, 15:17, 15:17] == 0).all()
    # The spinal cord is tubular, so both of its pieces stay.
    assert (labels == spinal_cord.id).sum() == 2 * 4 * 2 * 2


def test_eight_bit_image_rejected():
    image = sitk.Image([32, 32, 8], sitk.sitkUInt8)
    with pytest.raises(InvalidInputError, match="8-bit"):
        check_ct(image, "picture.nii.gz")


def test_two_dimensional_image_rejected():
    image = sitk.Image([32, 32], sitk.sitkInt16)
    with pytest.raises(InvalidInputError, match="not a 3D volume"):
        check_ct(image, "slice.nii.gz")


def test_mr_like_intensities_rejected():
    array = np.random.default_rng(0).integers(0, 1500, size=(8, 32, 32)).astype(np.int16)
    with pytest.raises(InvalidInputError, match="Hounsfield"):
        check_ct(sitk.GetImageFromArray(array), "t1.nii.gz")


def test_segment_command_writes_outputs(tmp_path, tiny_checkpoint_file, shared_data):
    source = shared_data / "totalsegmentator" / "example_ct_sm.nii.gz"
    result = run_gcis("segment", str(source), "-o", str(tmp_path), "--weights", str(tiny_checkpoint_file), "--masks")
    assert result.returncode == 0, result.stderr
    labels = sitk.ReadImage(str(tmp_path / "labels.nii.gz"))
    image = sitk.ReadImage(str(source))
    assert labels.GetSize() == image.GetSize()
    assert labels.GetOrigin() == pytest.approx(image.GetOrigin())
    names = json.loads((tmp_path / "labels.json").read_text())
    assert all(name in {"liver", "spleen", "kidney_left", "kidney_right", "aorta"} for name in names.values())
    for name in names.values():
        assert (tmp_path / "masks" / f"{name}.nii.gz").is_file()


def test_segment_dicom_series(tmp_path, tiny_checkpoint_file, shared_data):
    series = shared_data / "totalsegmentator" / "example_ct_dicom"
    result = run_gcis("segment", str(series), "-o", str(tmp_path), "--weights", str(tiny_checkpoint_file), "--task", "liver")
    assert result.returncode == 0, result.stderr
    assert sitk.ReadImage(str(tmp_path / "labels.nii.gz")).GetSize() == (512, 512, 20)


def test_segment_unknown_task_message(tmp_path, tiny_checkpoint_file, shared_data):
    source = shared_data / "totalsegmentator" / "example_ct_sm.nii.gz"
    result = run_gcis("segment", str(source), "-o", str(tmp_path), "--weights", str(tiny_checkpoint_file), "--task", "livr")
    assert result.returncode == 2
    assert "liver" in result.stderr
    assert not (tmp_path / "labels.nii.gz").exists()


def test_segment_rejects_mr_volume(tmp_path, tiny_checkpoint_file):
    array = np.random.default_rng(0).integers(0, 1500, size=(16, 32, 32)).astype(np.int16)
    path = tmp_path / "t1.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    result = run_gcis("segment", str(path), "-o", str(tmp_path / "out"), "--weights", str(tiny_checkpoint_file))
    assert result.returncode == 2
    assert "t1.nii.gz" in result.stderr
    assert "Hounsfield" in result.stderr


def test_segment_output_file_rejected(tmp_path, tiny_checkpoint_file, shared_data):
    source = shared_data / "totalsegmentator" / "example_ct_sm.nii.gz"
    existing = tmp_path / "result.txt"
    existing.write_text("keep me")
    result = run_gcis("segment", str(source), "-o", str(existing), "--weights", str(tiny_checkpoint_file), "--task", "liver")
    assert result.returncode == 2
    assert "result.txt is a file" in result.stderr
    assert existing.read_text() == "keep me"


@pytest.mark.parametrize(
    "option, value", [("--overlap", "1.5"), ("--overlap", "-1"), ("--batch-size", "0"), ("--window-size", "48")]
)
def test_segment_invalid_option_rejected(tmp_path, tiny_checkpoint_file, shared_data, option, value):
    source = shared_data / "totalsegmentator" / "example_ct_sm.nii.gz"
    result = run_gcis("segment", str(source), "-o", str(tmp_path), "--weights", str(tiny_checkpoint_file), option, value)
    assert result.returncode == 2
    assert option in result.stderr
    assert value in result.stderr


def test_window_size_sets_sliding_window(tiny_checkpoint_file):
    default = Segmenter.from_weights(tiny_checkpoint_file)
    larger = Segmenter.from_weights(tiny_checkpoint_file, window_size=64)
    volume = np.zeros((70, 70, 70), dtype=np.float32)
    tasks = default.resolve_tasks(["liver"])

    assert default.roi_size == (32, 32, 32)
    assert larger.roi_size == (64, 64, 64)
    assert larger.predict_array(volume, tasks).shape == (70, 70, 70)


def test_window_size_not_multiple_of_32_rejected(tiny_checkpoint_file):
    with pytest.raises(ValueError, match="invalid window size 40"):
        Segmenter.from_weights(tiny_checkpoint_file, window_size=40)


def test_evaluate_max_cases_scores_first(tmp_path, tiny_checkpoint_file, shared_data):
    example = shared_data / "totalsegmentator"
    case = {"image": str(example / "example_ct_sm.nii.gz"), "label": str(example / "example_seg.nii.gz"),
            "labels": {"1": "spleen", "5": "liver"}}
    datalist = tmp_path / "list.json"
    datalist.write_text(json.dumps({"validation": [dict(case, case_id="first"), dict(case, case_id="second")]}))
    scores = tmp_path / "scores.csv"

    result = run_gcis("evaluate", "--datalist", str(datalist), "--weights", str(tiny_checkpoint_file),
                      "--max-cases", "1", "-o", str(scores))

    assert result.returncode == 0, result.stderr
    rows = scores.read_text().splitlines()[1:]
    assert {row.split(",")[0] for row in rows} == {"first"}
    assert len(rows) == 2
