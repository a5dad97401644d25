"""Loading and series selection on good and faulty DICOM folders, in-process (no Holoscan run).

Each faulty series is a copy of the small test series (slice_000.dcm ... slice_019.dcm in
slice order) with one defect; the test checks that the InputError names the file or series
and the reason.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pydicom
import pytest
from deploy_test_helpers import new_instance, select_series
from gcis_deploy.errors import InputError
from gcis_deploy.series_checks import transfer_syntax_problems
from pydicom.encaps import encapsulate
from pydicom.uid import generate_uid

JPEG2000_PART2_LOSSLESS = "1.2.840.10008.1.2.4.92"  # pydicom 3.0 has no decoder for it


def rejection(folder: Path) -> str:
    with pytest.raises(InputError) as raised:
        select_series(folder)
    return str(raised.value)


def shifted(dataset: pydicom.Dataset, dx=0.0, dy=0.0, dz=0.0) -> pydicom.Dataset:
    x, y, z = (float(v) for v in dataset.ImagePositionPatient)
    dataset.ImagePositionPatient = [x + dx, y + dy, z + dz]
    return dataset


def without(dataset: pydicom.Dataset, *keywords: str) -> pydicom.Dataset:
    for keyword in keywords:
        if keyword in dataset:
            del dataset[keyword]
    return dataset


def test_small_series_selected(small_series):
    series = select_series(small_series)

    assert len(series.get_sop_instances()) == 20
    assert series.Modality == "CT"


def test_blank_uids_derived(example_series):
    series = select_series(example_series)
    datasets = [sop.get_native_sop_instance() for sop in series.get_sop_instances()]

    assert len(datasets) == 20
    assert series.SeriesInstanceUID
    assert all(d.SOPInstanceUID == d.file_meta.MediaStorageSOPInstanceUID for d in datasets)
    assert {d.StudyInstanceUID for d in datasets} != {""}


def test_blank_uids_derived_deterministically(example_series):
    assert select_series(example_series).SeriesInstanceUID == select_series(example_series).SeriesInstanceUID


def relabel_as_jpeg2000_part2(dataset: pydicom.Dataset) -> pydicom.Dataset:
    """Wrap the native pixel data as one fragment and label it with a syntax that pydicom cannot decode."""
    dataset.PixelData = encapsulate([dataset.PixelData])
    dataset["PixelData"].VR = "OB"
    dataset["PixelData"].is_undefined_length = True
    dataset.file_meta.TransferSyntaxUID = JPEG2000_PART2_LOSSLESS
    return dataset


def tilt_gantry(index: int, dataset: pydicom.Dataset) -> pydicom.Dataset:
    """Tilt the slice plane by 15 degrees about x while positions still step along z, as a tilted gantry does."""
    angle = math.radians(15)
    dataset.ImageOrientationPatient = [1, 0, 0, 0, round(math.cos(angle), 6), round(math.sin(angle), 6)]
    dataset.GantryDetectorTilt = 15
    return dataset


def make_coronal(index: int, dataset: pydicom.Dataset) -> pydicom.Dataset:
    dataset.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    return shifted(dataset, dy=2.0 * index, dz=-2.0 * index)


FAULTS = {
    # name: (edit(index, dataset), phrases the error must contain)
    "missing slice": (
        lambda i, d: None if i == 10 else d,
        ["missing slices", "1 slice between slice_009.dcm", "slice_011.dcm"],
    ),
    "duplicate slice": (
        lambda i, d: [d, new_instance(d)] if i == 7 else d,
        ["duplicate slices", "slice_007", "share a position"],
    ),
    "inconsistent slice spacing": (
        lambda i, d: shifted(d, dz=0.6) if i >= 12 else d,
        ["inconsistent slice spacing", "2.600 mm", "slice_011.dcm", "slice_012.dcm"],
    ),
    "inconsistent pixel spacing": (
        lambda i, d: setattr(d, "PixelSpacing", [1.2, 1.2]) or d if i == 5 else d,
        ["inconsistent pixel spacing", "slice_005.dcm"],
    ),
    "inconsistent orientation": (
        lambda i, d: setattr(d, "ImageOrientationPatient", [1, 0, 0, 0, 0.984808, 0.173648]) or d if i == 5 else d,
        ["inconsistent orientation", "slice_005.dcm"],
    ),
    "gantry tilt": (tilt_gantry, ["gantry tilt", "15.0 degrees", "GantryDetectorTilt 15.0"]),
    "coronal slices": (make_coronal, ["slices are coronal", "axial"]),
    "one slice without position": (
        lambda i, d: without(d, "ImagePositionPatient") if i == 4 else d,
        ["1 of 20 instances lack ImagePositionPatient (slice_004.dcm)"],
    ),
    "no patient position tags": (
        lambda i, d: without(d, "ImagePositionPatient", "ImageOrientationPatient"),
        ["20 of 20 instances lack ImagePositionPatient", "lack ImageOrientationPatient"],
    ),
    "no frame of reference": (
        lambda i, d: without(d, "FrameOfReferenceUID"),
        ["lack FrameOfReferenceUID"],
    ),
    "two frames of reference": (
        lambda i, d: setattr(d, "FrameOfReferenceUID", "1.2.3.4") or d if i >= 10 else d,
        ["FrameOfReferenceUID differs", "slice_010.dcm"],
    ),
    "undecodable transfer syntax": (
        lambda i, d: relabel_as_jpeg2000_part2(d) if i == 3 else d,
        ["cannot be decoded", "JPEG 2000 Part 2", "slice_003.dcm", "Explicit VR Little Endian"],
    ),
    "single slice": (lambda i, d: d if i == 0 else None, ["1 slice, fewer than the 10"]),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_faulty_series_rejected(fault, small_series, edited_copy):
    edit, phrases = FAULTS[fault]
    folder = edited_copy(small_series, edit)

    message = rejection(folder)

    assert "no CT series to segment" in message
    series_uid = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True).SeriesInstanceUID
    assert series_uid in message
    for phrase in phrases:
        assert phrase in message


def test_copy_of_same_instance_ignored(small_series, edited_copy, caplog):
    folder = edited_copy(small_series, lambda i, d: [d, d] if i == 7 else d)

    with caplog.at_level(logging.WARNING):
        series = select_series(folder)

    assert len(series.get_sop_instances()) == 20
    assert "already read from" in caplog.text


def test_missing_patient_position_accepted(small_series, edited_copy):
    folder = edited_copy(small_series, lambda i, d: without(d, "PatientPosition"))

    assert len(select_series(folder).get_sop_instances()) == 20


def test_empty_folder_rejected(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()

    message = rejection(folder)

    assert f"input folder {folder} is empty" in message


def test_folder_without_dicom_rejected(tmp_path):
    folder = tmp_path / "not_dicom"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image\n")
    (folder / "scan.raw").write_bytes(bytes(range(256)) * 8)

    message = rejection(folder)

    assert "contains 2 files but none is a DICOM image" in message
    assert "notes.txt" in message
    assert "scan.raw" in message


def test_stripped_headers_rejected(shared_data, copy_files):
    folder = copy_files(sorted((shared_data / "lungmask").glob("*.dcm")))

    message = rejection(folder)

    assert "no CT series to segment" in message
    assert "no Modality" in message


def test_enhanced_ct_rejected(shared_data, copy_files):
    folder = copy_files([shared_data / "pydicom-data" / "eCT_Supplemental.dcm"])

    message = rejection(folder)

    assert "no CT series to segment" in message
    assert "does not match the conditions of any selection" in message
    assert "DERIVED" in message


def test_three_slice_series_rejected(shared_data, copy_files):
    folder = copy_files(sorted((shared_data / "dcmqi" / "segmentations" / "ct-3slice").glob("*.dcm")))

    message = rejection(folder)

    assert "3 slices, fewer than the 10" in message


def as_other_series(dataset: pydicom.Dataset, series_uid: str, **attributes) -> pydicom.Dataset:
    dataset = new_instance(dataset)
    dataset.SeriesInstanceUID = series_uid
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    return dataset


def test_ct_chosen_among_other_series(small_series, edited_copy, caplog):
    mr_uid, localizer_uid = generate_uid(), generate_uid()
    folder = edited_copy(small_series, name="input")
    edited_copy(small_series, lambda i, d: as_other_series(d, mr_uid, Modality="MR"), name="input/mr")
    edited_copy(
        small_series,
        lambda i, d: as_other_series(d, localizer_uid, ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"]) if i < 2 else None,
        name="input/localizer",
    )
    ct_uid = pydicom.dcmread(folder / "slice_000.dcm", stop_before_pixels=True).SeriesInstanceUID

    with caplog.at_level(logging.INFO):
        series = select_series(folder)

    assert series.SeriesInstanceUID == ct_uid
    assert f"selected series {ct_uid}" in caplog.text
    assert f"not selected: series {mr_uid}" in caplog.text
    assert f"not selected: series {localizer_uid}" in caplog.text


def test_largest_valid_ct_series_chosen(small_series, edited_copy, caplog):
    full_uid, broken_uid = generate_uid(), generate_uid()
    folder = edited_copy(small_series, lambda i, d: d if i < 12 else None, name="input")
    edited_copy(small_series, lambda i, d: as_other_series(d, full_uid), name="input/full")
    edited_copy(
        small_series,
        lambda i, d: [as_other_series(d, broken_uid), as_other_series(d, broken_uid)] if i == 4
        else as_other_series(d, broken_uid),
        name="input/broken",
    )

    with caplog.at_level(logging.INFO):
        series = select_series(folder)

    assert series.SeriesInstanceUID == full_uid
    assert f"skipped series {broken_uid}" in caplog.text
    assert "duplicate slices" in caplog.text


def test_cornerstone_transfer_syntaxes_decodable(shared_data):
    undecoded = {}
    for path in sorted((shared_data / "cornerstone").glob("CTImage.dcm*")):
        dataset = pydicom.dcmread(path)
        problems = transfer_syntax_problems([dataset])
        if problems:
            assert path.name in problems[0]
            continue
        try:
            pixels = dataset.pixel_array
        except Exception as error:  # any decoder failure is a case the header check missed
            undecoded[path.name] = f"{type(error).__name__}: {error}"
            continue
        assert pixels.shape == (512, 512)

    assert undecoded == {}


def test_undecodable_syntax_reported(shared_data):
    dataset = pydicom.dcmread(shared_data / "cornerstone" / "CTImage.dcm", stop_before_pixels=True)
    dataset.file_meta.TransferSyntaxUID = JPEG2000_PART2_LOSSLESS

    problems = transfer_syntax_problems([dataset])

    assert len(problems) == 1
    assert "JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)" in problems[0]
