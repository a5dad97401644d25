"""The DICOM SEG writer on known label maps, read back with highdicom and pydicom."""

from __future__ import annotations

import random
from dataclasses import replace

import gcis
import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from gcis.catalogue import load_catalogue
from gcis.data.geometry import read_volume
from gcis.dicom.seg import AlgorithmInfo
from gcis.inference.segmenter import SegmentationResult
from gcis_deploy.seg_writer import SEG_FILE_NAME, DICOMSegWriterOperator
from monai.deploy.core import Fragment

ALGORITHM = AlgorithmInfo(version=gcis.__version__, parameters={"weights": "test.pt"})
# Label id -> slices with a box of that label. The other slices stay empty.
BOXES = {1: range(2, 6), 3: range(8, 13), 5: range(14, 17)}
LABELLED_SLICES = sorted({z for slices in BOXES.values() for z in slices})


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


@pytest.fixture()
def sources(small_series) -> list[pydicom.Dataset]:
    """The small series' datasets in random order: the writer must pair slices by position, not by order."""
    datasets = [pydicom.dcmread(path) for path in sorted(small_series.iterdir())]
    random.Random(0).shuffle(datasets)
    return datasets


def label_result(small_series, catalogue, boxes=BOXES, tasks=None) -> SegmentationResult:
    """A label map on the small series' grid with one box per label id."""
    reference = read_volume(small_series)
    array = np.zeros(sitk.GetArrayViewFromImage(reference).shape, dtype=np.uint16)
    for number, (label, slices) in enumerate(boxes.items()):
        array[list(slices), 20 + 30 * number : 45 + 30 * number, 50:90] = label
    label_image = sitk.GetImageFromArray(array)
    label_image.CopyInformation(reference)
    tasks = tasks or [catalogue.get(i) for i in (1, 3, 5, 52)]
    names = {task.id: task.name for task in tasks}
    return SegmentationResult(label_image=label_image, labels={i: names[i] for i in boxes}, tasks=tasks)


def write_and_read(tmp_path, result, sources, **options) -> hd.seg.Segmentation:
    writer = DICOMSegWriterOperator(Fragment(), output_folder=tmp_path / "out", algorithm=ALGORITHM, name="writer",
                                    **options)
    path = writer.write(result, sources)
    assert path == tmp_path / "out" / SEG_FILE_NAME
    return hd.seg.segread(path)


def pixels_by_slice(seg: hd.seg.Segmentation, small_series) -> np.ndarray:
    """Return the SEG's label pixels in the slice order of the small series (slice_000 ... slice_019)."""
    uids = [pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID for path in sorted(small_series.iterdir())]
    return seg.get_pixels_by_source_instance(uids, combine_segments=True, relabel=False)


def test_labelmap_pixels_match_label_map(tmp_path, small_series, catalogue, sources):
    result = label_result(small_series, catalogue)

    seg = write_and_read(tmp_path, result, sources)

    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.7"
    assert seg.SegmentationType == "LABELMAP"
    assert seg.BitsAllocated == 8
    assert seg.get_segment_numbers() == [1, 3, 5]
    np.testing.assert_array_equal(pixels_by_slice(seg, small_series), sitk.GetArrayFromImage(result.label_image))


def test_labelmap_keeps_empty_frames(tmp_path, small_series, catalogue, sources):
    seg = write_and_read(tmp_path, label_result(small_series, catalogue), sources)

    assert seg.NumberOfFrames == 20


def test_omit_empty_frames_option(tmp_path, small_series, catalogue, sources):
    seg = write_and_read(tmp_path, label_result(small_series, catalogue), sources, omit_empty_frames=True)

    assert seg.NumberOfFrames == len(LABELLED_SLICES)


def test_references_source_series(tmp_path, small_series, catalogue, sources):
    seg = write_and_read(tmp_path, label_result(small_series, catalogue), sources)
    source = sources[0]

    assert seg.StudyInstanceUID == source.StudyInstanceUID
    assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert seg.SeriesInstanceUID != source.SeriesInstanceUID
    assert len(seg.ReferencedSeriesSequence) == 1
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == source.SeriesInstanceUID
    assert {item.ReferencedSOPInstanceUID for item in referenced.ReferencedInstanceSequence} == {
        d.SOPInstanceUID for d in sources
    }
    assert seg.SeriesNumber == 1003


def test_series_description_not_clinical(tmp_path, small_series, catalogue, sources):
    seg = write_and_read(tmp_path, label_result(small_series, catalogue), sources)

    assert "not for clinical use" in seg.SeriesDescription
    assert len(seg.SeriesDescription) <= 64


def test_segments_carry_catalogue_codes(tmp_path, small_series, catalogue, sources):
    seg = write_and_read(tmp_path, label_result(small_series, catalogue), sources)

    for number in (1, 3, 5):
        task = catalogue.get(number)
        description = seg.get_segment_description(number)
        assert description.segment_label == task.display_name
        category = description.SegmentedPropertyCategoryCodeSequence[0]
        assert (category.CodeValue, category.CodingSchemeDesignator, category.CodeMeaning) == tuple(
            task.snomed["property_category"][key] for key in ("code", "scheme", "meaning")
        )
        property_type = description.SegmentedPropertyTypeCodeSequence[0]
        assert (property_type.CodeValue, property_type.CodingSchemeDesignator, property_type.CodeMeaning) == tuple(
            task.snomed["property_type"][key] for key in ("code", "scheme", "meaning")
        )
        assert description.SegmentDescription == f"gCIS task {task.name}, catalogue id {task.id}"


def test_laterality_written_as_modifier(tmp_path, small_series, catalogue, sources):
    seg = write_and_read(tmp_path, label_result(small_series, catalogue), sources)

    kidney_type = seg.get_segment_description(3).SegmentedPropertyTypeCodeSequence[0]
    spleen_type = seg.get_segment_description(1).SegmentedPropertyTypeCodeSequence[0]

    modifier = kidney_type.SegmentedPropertyTypeModifierCodeSequence[0]
    assert (modifier.CodeValue, modifier.CodingSchemeDesignator, modifier.CodeMeaning) == ("7771000", "SCT", "Left")
    assert "SegmentedPropertyTypeModifierCodeSequence" not in spleen_type


def test_algorithm_identification(tmp_path, small_series, catalogue, sources):
    seg = write_and_read(tmp_path, label_result(small_series, catalogue), sources)

    for number in (1, 3, 5):
        description = seg.get_segment_description(number)
        assert description.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        identification = description.SegmentationAlgorithmIdentificationSequence[0]
        assert identification.AlgorithmName == "gCIS"
        assert identification.AlgorithmVersion == gcis.__version__
        family = identification.AlgorithmFamilyCodeSequence[0]
        assert (family.CodeValue, family.CodingSchemeDesignator) == ("123110", "DCM")


def test_binary_maps_ids_to_segment_numbers(tmp_path, small_series, catalogue, sources):
    result = label_result(small_series, catalogue)

    seg = write_and_read(tmp_path, result, sources, segmentation_type="BINARY")

    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert seg.SegmentationType == "BINARY"
    assert seg.get_segment_numbers() == [1, 2, 3]
    assert seg.NumberOfFrames == 20 * 3
    descriptions = {n: seg.get_segment_description(n).SegmentDescription for n in (1, 2, 3)}
    assert descriptions == {
        1: "gCIS task spleen, catalogue id 1",
        2: "gCIS task kidney_left, catalogue id 3",
        3: "gCIS task liver, catalogue id 5",
    }
    expected = np.array([0, 1, 0, 2, 0, 3], dtype=np.uint16)[sitk.GetArrayFromImage(result.label_image)]
    np.testing.assert_array_equal(pixels_by_slice(seg, small_series), expected)


def test_ids_above_255_kept(tmp_path, small_series, catalogue, sources):
    high = replace(catalogue.get(1), id=300, name="test_structure_300", synonyms=("Test structure 300",))
    result = label_result(small_series, catalogue, boxes={300: range(3, 7), 5: range(9, 11)},
                          tasks=[catalogue.get(5), high])
    assert 300 in np.unique(sitk.GetArrayViewFromImage(result.label_image))

    labelmap = write_and_read(tmp_path / "labelmap", result, sources)
    binary = write_and_read(tmp_path / "binary", result, sources, segmentation_type="BINARY")

    assert labelmap.BitsAllocated == 16
    assert labelmap.get_segment_numbers() == [5, 300]
    np.testing.assert_array_equal(pixels_by_slice(labelmap, small_series), sitk.GetArrayFromImage(result.label_image))
    assert binary.get_segment_description(2).SegmentDescription == "gCIS task test_structure_300, catalogue id 300"
    assert pixels_by_slice(binary, small_series).max() == 2


def test_empty_label_map_describes_requested_tasks(tmp_path, small_series, catalogue, sources):
    result = label_result(small_series, catalogue, boxes={})

    seg = write_and_read(tmp_path, result, sources)

    assert seg.get_segment_numbers() == [1, 3, 5, 52]
    assert seg.NumberOfFrames == 20
    assert pixels_by_slice(seg, small_series).max() == 0


def test_mismatched_series_rejected(tmp_path, small_series, catalogue, sources):
    writer = DICOMSegWriterOperator(Fragment(), output_folder=tmp_path / "out", algorithm=ALGORITHM, name="writer")

    with pytest.raises(ValueError, match="the label map has 20 slices but the series has 19 instances"):
        writer.write(label_result(small_series, catalogue), sources[:19])

    assert not (tmp_path / "out" / SEG_FILE_NAME).exists()


def test_failed_write_leaves_no_file(tmp_path, small_series, catalogue, sources, monkeypatch):
    def save_half_then_fail(self, path, *args, **kwargs):
        with open(path, "wb") as stream:
            stream.write(b"\0" * 1000)
        raise OSError("disk full")

    monkeypatch.setattr(hd.seg.Segmentation, "save_as", save_half_then_fail)
    writer = DICOMSegWriterOperator(Fragment(), output_folder=tmp_path / "out", algorithm=ALGORITHM, name="writer")

    with pytest.raises(OSError, match="disk full"):
        writer.write(label_result(small_series, catalogue), sources)

    assert list((tmp_path / "out").iterdir()) == []
