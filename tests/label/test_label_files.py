"""Label uploads (lib.labels) and DICOM SEG writing and reading (lib.dicom_seg), without a server."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from lib.dicom_seg import read_seg, write_seg
from lib.labels import LabelError, check_label

from gcis.catalogue import load_catalogue
from gcis.data.geometry import read_volume
from gcis.dicom.series import read_series


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def small_ct(size=(12, 10, 8), spacing=(2.0, 2.0, 3.0), origin=(-10.0, 5.0, 30.0)) -> sitk.Image:
    image = sitk.Image(list(size), sitk.sitkInt16)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


def write_label(path, values: np.ndarray, reference: sitk.Image, pixel_type=None):
    label = sitk.GetImageFromArray(values)
    label.CopyInformation(reference)
    if pixel_type is not None:
        label = sitk.Cast(label, pixel_type)
    sitk.WriteImage(label, str(path))
    return path


def test_check_label_keeps_catalogue_ids(tmp_path, catalogue):
    reference = small_ct()
    values = np.zeros((8, 10, 12), dtype=np.uint8)
    values[1:3, 2:4, 2:5] = 5  # liver
    values[5, 5, 5] = 1  # spleen
    checked = check_label(write_label(tmp_path / "l.nii.gz", values, reference), reference, catalogue)

    assert checked.annotated == ["spleen", "liver"]
    assert checked.labels == {1: "spleen", 5: "liver"}
    assert np.array_equal(sitk.GetArrayFromImage(checked.image), values)
    assert checked.info() == {"label_names": {"spleen": 1, "liver": 5}, "annotated": ["spleen", "liver"]}


def test_check_label_maps_label_info_names(tmp_path, catalogue):
    reference = small_ct()
    values = np.zeros((8, 10, 12), dtype=np.uint8)
    values[0, 0, 0] = 1
    values[1, 1, 1] = 2
    label_info = [{"name": "Left Kidney", "idx": 1}, {"name": "L1 vertebra", "idx": 2}, {"name": "liver", "idx": 3}]
    checked = check_label(write_label(tmp_path / "l.nii.gz", values, reference), reference, catalogue, label_info)

    relabelled = sitk.GetArrayFromImage(checked.image)
    assert relabelled[0, 0, 0] == catalogue.get("kidney_left").id
    assert relabelled[1, 1, 1] == catalogue.get("vertebrae_L1").id
    # A named segment without voxels still counts as annotated (checked and absent).
    assert "liver" in checked.annotated
    assert set(np.unique(relabelled)) == {0, catalogue.get("kidney_left").id, catalogue.get("vertebrae_L1").id}


def test_check_label_adds_annotated_parameter(tmp_path, catalogue):
    reference = small_ct()
    values = np.zeros((8, 10, 12), dtype=np.uint8)
    values[2, 2, 2] = 5
    checked = check_label(write_label(tmp_path / "l.nii.gz", values, reference), reference, catalogue,
                          annotated=["gall bladder"])
    assert checked.annotated == ["gallbladder", "liver"]


def test_check_label_resamples_flipped_storage(tmp_path, catalogue):
    reference = small_ct()
    values = np.zeros((8, 10, 12), dtype=np.uint8)
    values[3, 1, 4] = 5
    # The same voxels stored with the y axis reversed, as the series label in the shared data is.
    flipped = sitk.Flip(sitk.GetImageFromArray(values), [False, True, False])
    flipped.SetSpacing(reference.GetSpacing())
    origin = list(reference.GetOrigin())
    origin[1] += (reference.GetSize()[1] - 1) * reference.GetSpacing()[1]
    flipped.SetOrigin(origin)
    flipped.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, 1))
    sitk.WriteImage(flipped, str(tmp_path / "flipped.nii.gz"))

    checked = check_label(tmp_path / "flipped.nii.gz", reference, catalogue)
    assert np.array_equal(sitk.GetArrayFromImage(checked.image), values)


def test_check_label_reads_ohif_buffer(tmp_path, catalogue):
    reference = small_ct()
    values = np.zeros((8, 10, 12), dtype=np.uint8)
    values[4, 3, 2] = 52
    (tmp_path / "label.bin").write_bytes(values.tobytes())
    checked = check_label(tmp_path / "label.bin", reference, catalogue)
    assert np.array_equal(sitk.GetArrayFromImage(checked.image), values)
    assert checked.annotated == ["aorta"]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unreadable", "could not be read"),
        ("other_grid", "does not match the image grid"),
        ("shifted_origin", "does not match the image grid"),
        ("float_values", "integer label values"),
        ("unknown_value", "not catalogue task ids"),
        ("negative_value", "negative values"),
        ("unknown_name", "not in the task catalogue"),
        ("unnamed_value", "no entry in label_info"),
        ("bad_entry", "needs 'name' and 'idx'"),
        ("short_buffer", "voxels but the image has"),
        ("unknown_annotated", "annotated structure"),
    ],
)
def test_check_label_rejects(tmp_path, catalogue, case, message):
    reference = small_ct()
    values = np.zeros((8, 10, 12), dtype=np.int16)
    values[1, 1, 1] = 1
    label_info = None
    annotated = None
    path = tmp_path / "label.nii.gz"
    if case == "unreadable":
        path.write_text("not an image")
    elif case == "other_grid":
        write_label(path, values[:4], small_ct(size=(12, 10, 4)))
    elif case == "shifted_origin":
        write_label(path, values, small_ct(origin=(-10.0, 5.0, 33.0)))
    elif case == "float_values":
        write_label(path, values.astype(np.float32), reference)
    elif case == "unknown_value":
        values[2, 2, 2] = 64  # TotalSegmentator's portal_vein_and_splenic_vein, not in the catalogue
        write_label(path, values, reference)
    elif case == "negative_value":
        values[2, 2, 2] = -1
        write_label(path, values, reference)
    elif case == "unknown_name":
        label_info = [{"name": "flux capacitor", "idx": 1}]
        write_label(path, values, reference)
    elif case == "unnamed_value":
        values[2, 2, 2] = 2
        label_info = [{"name": "liver", "idx": 1}]
        write_label(path, values, reference)
    elif case == "bad_entry":
        label_info = [{"label": "liver"}]
        write_label(path, values, reference)
    elif case == "short_buffer":
        path = tmp_path / "label.bin"
        path.write_bytes(b"\x00" * 10)
    elif case == "unknown_annotated":
        annotated = ["flux capacitor"]
        write_label(path, values, reference)

    with pytest.raises(LabelError, match=message):
        check_label(path, reference, catalogue, label_info, annotated)


def test_seg_round_trip_keeps_codes_and_voxels(tmp_path, catalogue, ct_series, series_label):
    reference = read_volume(ct_series)
    checked = check_label(series_label, reference, catalogue, annotated=["gallbladder"])
    source = read_series(ct_series)

    seg_path = write_seg(checked.image, checked.annotated, source, catalogue, tmp_path / "seg.dcm")
    label, annotated = read_seg(seg_path, source, reference, catalogue)

    assert annotated == checked.annotated
    assert np.array_equal(sitk.GetArrayFromImage(label), sitk.GetArrayFromImage(checked.image))

    seg = pydicom.dcmread(seg_path)
    assert seg.Modality == "SEG"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source[0].SeriesInstanceUID
    segments = {item.SegmentLabel: item for item in seg.SegmentSequence}
    gallbladder = catalogue.get("gallbladder")
    assert gallbladder.display_name in segments  # annotated without voxels: an empty segment
    adrenal = catalogue.get("adrenal_gland_right")
    item = segments[adrenal.display_name]
    assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue == adrenal.snomed["property_type"]["code"]
    assert item.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "SCT"
    assert item.SegmentedPropertyCategoryCodeSequence[0].CodeValue == adrenal.snomed["property_category"]["code"]
    assert item.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence[0].CodeMeaning == "Right"
    assert item.SegmentAlgorithmType == "MANUAL"
