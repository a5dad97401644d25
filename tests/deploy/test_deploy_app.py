"""The whole Holoscan application, run in a subprocess as `python deploy_app ...`, on good and bad input."""

from __future__ import annotations

import json

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from deploy_test_helpers import assert_no_outputs, corrupt_codestream
from gcis.catalogue import load_catalogue
from gcis.checkpoint import load_checkpoint
from gcis.data.geometry import read_volume
from gcis.inference.segmenter import Segmenter

EXAMPLE_TASKS = ["liver", "aorta"]
EXIT_USAGE = 2
EXIT_INPUT_REJECTED = 3


def output_of(completed) -> str:
    return completed.stdout + completed.stderr


@pytest.fixture(scope="module")
def example_run(tmp_path_factory, run_app, example_series, tiny_checkpoint_file):
    """One app run on the shared 20-slice series with the tiny checkpoint, NIfTI and STL outputs on."""
    output = tmp_path_factory.mktemp("example_output")
    completed = run_app(["-i", example_series, "-o", output, "-m", tiny_checkpoint_file,
                         "--tasks", *EXAMPLE_TASKS, "--nifti", "--stl"])
    assert completed.returncode == 0, output_of(completed)[-5000:]
    return output


@pytest.fixture(scope="module")
def example_seg(example_run):
    return hd.seg.segread(example_run / "segmentation.dcm")


@pytest.fixture(scope="module")
def example_files(example_series):
    """{SOP Instance UID: dataset header} of the shared series; its UIDs are in the file meta header only."""
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in sorted(example_series.iterdir())]
    return {header.file_meta.MediaStorageSOPInstanceUID: header for header in headers}


def test_example_outputs_complete(example_run):
    names = sorted(p.relative_to(example_run).as_posix() for p in example_run.rglob("*") if p.is_file())

    assert "segmentation.dcm" in names
    assert "labels.nii.gz" in names
    assert "labels.json" in names
    assert any(name.startswith("stl/") for name in names)
    assert not [name for name in names if ".partial" in name]


def test_example_seg_matches_segmenter(example_seg, example_series, example_files, tiny_checkpoint_file):
    image = read_volume(example_series)
    segmenter = Segmenter.from_weights(tiny_checkpoint_file)
    expected = sitk.GetArrayFromImage(segmenter.segment(image, segmenter.resolve_tasks(EXAMPLE_TASKS)).label_image)

    uids = list(example_files)
    pixels = example_seg.get_pixels_by_source_instance(uids, combine_segments=True, relabel=False)

    for uid, frame in zip(uids, pixels):
        position = [float(v) for v in example_files[uid].ImagePositionPatient]
        slice_index = image.TransformPhysicalPointToIndex(position)[2]
        np.testing.assert_array_equal(frame, expected[slice_index], err_msg=f"SEG frame of instance {uid}")
    assert set(example_seg.get_segment_numbers()) == set(np.unique(expected)) - {0}


def test_example_seg_references_series(example_seg, example_files):
    referenced = example_seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence

    assert {item.ReferencedSOPInstanceUID for item in referenced} == set(example_files)
    assert example_seg.FrameOfReferenceUID == next(iter(example_files.values())).FrameOfReferenceUID
    assert example_seg.NumberOfFrames == len(example_files)


def test_example_seg_readable_with_pydicom(example_run):
    dataset = pydicom.dcmread(example_run / "segmentation.dcm")

    assert dataset.Modality == "SEG"
    assert dataset.SegmentationType == "LABELMAP"
    assert "not for clinical use" in dataset.SeriesDescription
    assert dataset.pixel_array.shape == (20, 512, 512)


def test_example_segments_carry_catalogue_codes(example_seg):
    catalogue = load_catalogue()

    assert example_seg.get_segment_numbers()
    for number in example_seg.get_segment_numbers():
        task = catalogue.get(number)
        description = example_seg.get_segment_description(number)
        assert task.name in EXAMPLE_TASKS
        assert description.segment_label == task.display_name
        assert description.segmented_property_category.value == task.snomed["property_category"]["code"]
        assert description.segmented_property_type.value == task.snomed["property_type"]["code"]
        assert description.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "gCIS"


def test_example_nifti_matches_seg(example_run, example_seg, example_files):
    labels = sitk.ReadImage(str(example_run / "labels.nii.gz"))
    table = json.loads((example_run / "labels.json").read_text())

    assert sorted(int(label) for label in table) == example_seg.get_segment_numbers()
    uids = list(example_files)
    pixels = example_seg.get_pixels_by_source_instance(uids, combine_segments=True, relabel=False)
    array = sitk.GetArrayViewFromImage(labels)
    for uid, frame in zip(uids, pixels):
        position = [float(v) for v in example_files[uid].ImagePositionPatient]
        np.testing.assert_array_equal(frame, array[labels.TransformPhysicalPointToIndex(position)[2]])


def test_example_stl_per_structure(example_run, example_seg):
    catalogue = load_catalogue()

    expected = sorted(f"{catalogue.get(n).name}.stl" for n in example_seg.get_segment_numbers())
    assert sorted(p.name for p in (example_run / "stl").iterdir()) == expected


def test_environment_variables_and_binary(run_app, small_series, tiny_checkpoint_file, tmp_path):
    output = tmp_path / "output"
    completed = run_app(
        ["--seg-type", "binary"],
        env={
            "HOLOSCAN_INPUT_PATH": str(small_series),
            "HOLOSCAN_OUTPUT_PATH": str(output),
            "HOLOSCAN_MODEL_PATH": str(tiny_checkpoint_file.parent),
        },
    )

    log = output_of(completed)
    assert completed.returncode == 0, log[-5000:]
    seg = hd.seg.segread(output / "segmentation.dcm")
    assert seg.SegmentationType == "BINARY"
    catalogue = load_catalogue()
    trained = load_checkpoint(tiny_checkpoint_file)[0].trained_tasks
    for name in trained:
        assert f"{name} ({catalogue.get(name).id})" in log, f"default task {name} not requested"
    described = {seg.get_segment_description(n).SegmentDescription.split()[2].rstrip(",")
                 for n in seg.get_segment_numbers()}
    assert described <= set(trained)


def test_empty_folder_exits_3(run_app, tiny_checkpoint_file, tmp_path):
    empty, output = tmp_path / "empty", tmp_path / "output"
    empty.mkdir()

    completed = run_app(["-i", empty, "-o", output, "-m", tiny_checkpoint_file])

    assert completed.returncode == EXIT_INPUT_REJECTED
    assert f"input folder {empty} is empty" in output_of(completed)
    assert_no_outputs(output)


def test_no_ct_series_exits_3(run_app, shared_data, copy_files, tiny_checkpoint_file, tmp_path):
    folder = copy_files(sorted((shared_data / "lungmask").glob("*.dcm")))
    output = tmp_path / "output"

    completed = run_app(["-i", folder, "-o", output, "-m", tiny_checkpoint_file])

    assert completed.returncode == EXIT_INPUT_REJECTED
    assert "no CT series to segment" in output_of(completed)
    assert_no_outputs(output)


def test_missing_slice_exits_3(run_app, example_series, edited_copy, tiny_checkpoint_file, tmp_path):
    folder = edited_copy(example_series, lambda i, d: None if i == 10 else d)
    output = tmp_path / "output"

    completed = run_app(["-i", folder, "-o", output, "-m", tiny_checkpoint_file])

    assert completed.returncode == EXIT_INPUT_REJECTED
    log = output_of(completed)
    assert "missing slices: 1 slice between slice_009.dcm" in log
    assert "slice_011.dcm" in log
    assert_no_outputs(output)


def test_undecodable_slice_exits_3(run_app, example_series, edited_copy, tiny_checkpoint_file, tmp_path):
    folder = edited_copy(example_series, corrupt_codestream)
    output = tmp_path / "output"

    completed = run_app(["-i", folder, "-o", output, "-m", tiny_checkpoint_file])

    assert completed.returncode == EXIT_INPUT_REJECTED
    log = output_of(completed)
    assert "the pixel data of slice_006.dcm" in log
    assert "could not be decoded" in log
    assert_no_outputs(output)


def test_unknown_task_exits_2_before_loading(run_app, small_series, tiny_checkpoint_file, tmp_path):
    output = tmp_path / "output"

    completed = run_app(["-i", small_series, "-o", output, "-m", tiny_checkpoint_file, "--tasks", "flux capacitor"])

    log = output_of(completed)
    assert completed.returncode == EXIT_USAGE
    assert "flux capacitor" in log
    assert "DICOM instances" not in log, "DICOM files were loaded before the task list was checked"
    assert_no_outputs(output)
