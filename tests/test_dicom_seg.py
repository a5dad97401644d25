"""gcis.dicom: label map -> DICOM SEG file -> label map with highdicom, on the shared 20-slice CT series.

The series' datasets have blank SOP, study and series UIDs (only the file meta header has the
SOP Instance UID), so every test also goes through the UID repair of gcis.dicom.series.
"""

from __future__ import annotations

import random
from copy import deepcopy
from dataclasses import replace

import gcis
import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from gcis.catalogue import TaskCatalogue, load_catalogue
from gcis.data.geometry import read_volume
from gcis.dicom.seg import (
    AlgorithmInfo,
    build_segmentation,
    read_segmentation,
    segment_description,
    task_of_segment,
)
from gcis.dicom.series import read_series

ALGORITHM = AlgorithmInfo(version=gcis.__version__, parameters={"weights": "test.pt"})
HIGH_ID = 300
# Catalogue id -> slices with a box of that id. Slices 0, 1, 18 and 19 stay empty.
BOXES = {3: range(2, 6), 5: range(6, 12), HIGH_ID: range(12, 18)}
LEFT = ("7771000", "SCT", "Left")


@pytest.fixture(scope="module")
def catalogue() -> TaskCatalogue:
    """The shipped catalogue plus a task with id 300, above the 8-bit range, with a code of its own."""
    base = load_catalogue()
    high = replace(
        base.get("spleen"),
        id=HIGH_ID,
        name="test_structure_300",
        synonyms=("Test structure 300",),
        snomed={
            "property_category": base.get("spleen").snomed["property_category"],
            "property_type": {"code": "T300", "scheme": "99GCIS", "meaning": "Test structure 300"},
        },
    )
    return TaskCatalogue([*base, high], source="test catalogue")


@pytest.fixture(scope="module")
def series(shared_data) -> list[pydicom.Dataset]:
    """The headers of the shared series, UIDs repaired, in a shuffled order that the SEG code must not rely on."""
    datasets = read_series(shared_data / "totalsegmentator" / "example_ct_dicom")
    random.Random(0).shuffle(datasets)
    return datasets


@pytest.fixture(scope="module")
def reference(shared_data) -> sitk.Image:
    return read_volume(shared_data / "totalsegmentator" / "example_ct_dicom")


@pytest.fixture(scope="module")
def label(reference) -> sitk.Image:
    values = np.zeros(tuple(reversed(reference.GetSize())), dtype=np.uint16)
    for number, (task_id, slices) in enumerate(BOXES.items()):
        values[list(slices), 100 + 60 * number : 150 + 60 * number, 200:300] = task_id
    image = sitk.GetImageFromArray(values)
    image.CopyInformation(reference)
    return image


@pytest.fixture(scope="module")
def tasks(catalogue):
    return [catalogue.get(task_id) for task_id in BOXES]


def code_of(item: pydicom.Dataset) -> tuple[str, str, str]:
    """Return a code sequence item as (value, scheme designator, meaning)."""
    return (str(item.CodeValue), str(item.CodingSchemeDesignator), str(item.CodeMeaning))


def catalogue_code(concept: dict) -> tuple[str, str, str]:
    return (concept["code"], concept["scheme"], concept["meaning"])


def write_and_read(tmp_path_factory, label, series, tasks, **options) -> hd.seg.Segmentation:
    """Build a SEG, save it to a file and read the file back with highdicom."""
    path = tmp_path_factory.mktemp("seg") / "seg.dcm"
    build_segmentation(label, series, tasks, ALGORITHM, **options).save_as(path)
    return hd.seg.segread(path)


@pytest.fixture(scope="module")
def labelmap_seg(tmp_path_factory, label, series, tasks) -> hd.seg.Segmentation:
    return write_and_read(tmp_path_factory, label, series, tasks)


@pytest.fixture(scope="module")
def binary_seg(tmp_path_factory, label, series, tasks) -> hd.seg.Segmentation:
    return write_and_read(tmp_path_factory, label, series, tasks, segmentation_type="BINARY")


def test_read_series_repairs_blank_uids(series):
    assert all(d.SOPInstanceUID == d.file_meta.MediaStorageSOPInstanceUID for d in series)
    assert all(d.SOPClassUID == d.file_meta.MediaStorageSOPClassUID for d in series)
    assert len({d.StudyInstanceUID for d in series}) == 1
    assert len({d.SeriesInstanceUID for d in series}) == 1
    assert series[0].StudyInstanceUID
    assert series[0].SeriesInstanceUID


def test_labelmap_round_trip(labelmap_seg, label, series, reference, catalogue):
    decoded, tasks = read_segmentation(labelmap_seg, series, reference, catalogue)

    assert [task.id for task in tasks] == [3, 5, HIGH_ID]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(decoded), sitk.GetArrayFromImage(label))
    assert decoded.GetPixelID() == sitk.sitkUInt16
    np.testing.assert_allclose(decoded.GetOrigin(), reference.GetOrigin())


def test_labelmap_keeps_id_300(labelmap_seg):
    assert labelmap_seg.SegmentationType == "LABELMAP"
    assert labelmap_seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.7"
    assert labelmap_seg.BitsAllocated == 16
    assert labelmap_seg.get_segment_numbers() == [3, 5, HIGH_ID]


def test_binary_round_trip(binary_seg, label, series, reference, catalogue):
    decoded, tasks = read_segmentation(binary_seg, series, reference, catalogue)

    assert binary_seg.SegmentationType == "BINARY"
    assert binary_seg.get_segment_numbers() == [1, 2, 3]
    assert [task.id for task in tasks] == [3, 5, HIGH_ID]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(decoded), sitk.GetArrayFromImage(label))


def test_binary_description_names_catalogue_id(binary_seg):
    descriptions = [binary_seg.get_segment_description(n).SegmentDescription for n in (1, 2, 3)]

    assert descriptions == [
        "gCIS task kidney_left, catalogue id 3",
        "gCIS task liver, catalogue id 5",
        "gCIS task test_structure_300, catalogue id 300",
    ]


def test_round_trip_from_file_path(tmp_path, label, series, reference, catalogue, tasks):
    path = tmp_path / "seg.dcm"
    build_segmentation(label, series, tasks).save_as(path)

    decoded, _ = read_segmentation(path, series, reference, catalogue)

    np.testing.assert_array_equal(sitk.GetArrayFromImage(decoded), sitk.GetArrayFromImage(label))


@pytest.mark.parametrize("seg_fixture", ["labelmap_seg", "binary_seg"])
def test_segments_carry_codes(request, seg_fixture, catalogue):
    seg = request.getfixturevalue(seg_fixture)

    for number in seg.get_segment_numbers():
        description = seg.get_segment_description(number)
        task = catalogue.get(str(description.TrackingID))
        assert description.SegmentLabel == task.display_name
        category = code_of(description.SegmentedPropertyCategoryCodeSequence[0])
        assert category == catalogue_code(task.snomed["property_category"])
        property_type = code_of(description.SegmentedPropertyTypeCodeSequence[0])
        assert property_type == catalogue_code(task.snomed["property_type"])
        assert list(description.RecommendedDisplayCIELabValue) == list(
            hd.color.CIELabColor.from_rgb(*task.color).value
        )


@pytest.mark.parametrize("seg_fixture", ["labelmap_seg", "binary_seg"])
def test_laterality_inside_property_type(request, seg_fixture, catalogue):
    seg = request.getfixturevalue(seg_fixture)
    number = {str(seg.get_segment_description(n).TrackingID): n for n in seg.get_segment_numbers()}

    kidney_type = seg.get_segment_description(number["kidney_left"]).SegmentedPropertyTypeCodeSequence[0]
    liver_type = seg.get_segment_description(number["liver"]).SegmentedPropertyTypeCodeSequence[0]

    assert code_of(kidney_type.SegmentedPropertyTypeModifierCodeSequence[0]) == LEFT
    assert "SegmentedPropertyTypeModifierCodeSequence" not in liver_type


def test_algorithm_identification(labelmap_seg):
    for number in labelmap_seg.get_segment_numbers():
        description = labelmap_seg.get_segment_description(number)
        assert description.SegmentAlgorithmType == "AUTOMATIC"
        identification = description.SegmentationAlgorithmIdentificationSequence[0]
        assert identification.AlgorithmName == "gCIS"
        assert identification.AlgorithmVersion == gcis.__version__
        family = identification.AlgorithmFamilyCodeSequence[0]
        assert (family.CodeValue, family.CodingSchemeDesignator) == ("123110", "DCM")
    assert labelmap_seg.SoftwareVersions == gcis.__version__


def test_segments_without_algorithm_manual(label, series, tasks):
    seg = build_segmentation(label, series, tasks)

    for item in seg.SegmentSequence:
        assert item.SegmentAlgorithmType == "MANUAL"
        assert "SegmentationAlgorithmIdentificationSequence" not in item


def test_series_attributes(labelmap_seg, series):
    source = series[0]

    assert "not for clinical use" in labelmap_seg.SeriesDescription
    assert labelmap_seg.StudyInstanceUID == source.StudyInstanceUID
    assert labelmap_seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert labelmap_seg.SeriesInstanceUID != source.SeriesInstanceUID
    assert labelmap_seg.SeriesNumber == 1000  # the example series has no Series Number


def test_references_every_source_instance(labelmap_seg, series):
    referenced = labelmap_seg.ReferencedSeriesSequence

    assert len(referenced) == 1
    assert referenced[0].SeriesInstanceUID == series[0].SeriesInstanceUID
    assert {item.ReferencedSOPInstanceUID for item in referenced[0].ReferencedInstanceSequence} == {
        d.SOPInstanceUID for d in series
    }


@pytest.mark.parametrize(("segmentation_type", "frames"), [("LABELMAP", 20), ("BINARY", 60)])
def test_empty_frames_kept(label, series, tasks, segmentation_type, frames):
    seg = build_segmentation(label, series, tasks, segmentation_type=segmentation_type)

    assert seg.NumberOfFrames == frames


def test_omit_empty_frames_option(label, series, tasks):
    seg = build_segmentation(label, series, tasks, omit_empty_frames=True)

    assert seg.NumberOfFrames == 16


def test_task_without_voxels_kept_as_segment(label, series, reference, catalogue, tasks):
    gallbladder = catalogue.get("gallbladder")
    seg = build_segmentation(label, series, [*tasks, gallbladder], segmentation_type="BINARY")

    _, read_tasks = read_segmentation(seg, series, reference, catalogue)

    assert gallbladder in read_tasks
    assert [task.id for task in read_tasks] == sorted(task.id for task in [*tasks, gallbladder])


def test_unknown_label_id_rejected(label, series, catalogue):
    with pytest.raises(ValueError, match=r"the label map contains ids \[300\] of no given task"):
        build_segmentation(label, series, [catalogue.get(3), catalogue.get(5)])


def test_no_tasks_rejected(label, series):
    with pytest.raises(ValueError, match="a DICOM SEG needs at least one segment"):
        build_segmentation(label, series, [])


def test_missing_instance_rejected(label, series, tasks):
    with pytest.raises(ValueError, match="the label map has 20 slices but the series has 19 instances"):
        build_segmentation(label, series[:19], tasks)


def test_instance_off_grid_rejected(label, series, tasks):
    shifted = deepcopy(series)
    position = [float(v) for v in shifted[4].ImagePositionPatient]
    shifted[4].ImagePositionPatient = [position[0] + 0.5, position[1], position[2]]

    with pytest.raises(ValueError, match=f"source instance {shifted[4].SOPInstanceUID} at .* lies 0.500 mm"):
        build_segmentation(label, shifted, tasks)


def test_duplicate_slice_rejected(label, series, tasks):
    duplicated = deepcopy(series)
    duplicated[1].ImagePositionPatient = list(duplicated[0].ImagePositionPatient)

    with pytest.raises(ValueError, match="both lie on slice"):
        build_segmentation(label, duplicated, tasks)


def test_laterality_read_from_segment_item(catalogue):
    """SEGs of the first gCIS label app version put the modifier on the segment item, and they still read."""
    description = segment_description(catalogue.get("kidney_left"), 1)
    property_type = description.SegmentedPropertyTypeCodeSequence[0]
    description.SegmentedPropertyTypeModifierCodeSequence = property_type.SegmentedPropertyTypeModifierCodeSequence
    del property_type.SegmentedPropertyTypeModifierCodeSequence

    assert task_of_segment(description, catalogue).name == "kidney_left"


def test_unknown_codes_matched_by_label(catalogue):
    description = segment_description(catalogue.get("liver"), 1)
    description.SegmentedPropertyTypeCodeSequence[0].CodeValue = "0000000"

    assert task_of_segment(description, catalogue).name == "liver"


def test_every_catalogue_task_describable(catalogue):
    for task in catalogue:
        description = segment_description(task, task.id, ALGORITHM)

        assert len(description.SegmentLabel) <= 64
        assert description.SegmentLabel.strip()
        assert description.SegmentedPropertyTypeCodeSequence[0].CodeValue == task.snomed["property_type"]["code"]
        assert description.SegmentedPropertyTypeCodeSequence[0].CodeMeaning.strip()
        assert task_of_segment(description, catalogue) == task


def test_labelmap_id_above_16_bit_rejected(label, series, catalogue, tasks):
    huge = replace(catalogue.get(HIGH_ID), id=70000, name="test_structure_70000", synonyms=("Test structure 70000",))

    with pytest.raises(ValueError, match="catalogue id 70000 does not fit the 16-bit pixels"):
        build_segmentation(label, series, [*tasks, huge])
