"""Reading the instances of one DICOM series, with blank UIDs repaired in memory.

Some de-identified exports, such as the TotalSegmentator example series, leave SOP Instance,
SOP Class, Study Instance and Series Instance UIDs blank in the dataset. A DICOM SEG must
reference every source instance by its SOP Instance UID and copy the study, so these are
filled before a SEG is built. Nothing is written back to the files.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

logger = logging.getLogger(__name__)

# Dataset keyword and the file meta keyword that contains the same UID.
META_UID_KEYWORDS = (("SOPInstanceUID", "MediaStorageSOPInstanceUID"), ("SOPClassUID", "MediaStorageSOPClassUID"))
# Attributes that blank-series instances must share to be given the same derived Series Instance UID.
SERIES_GROUP_KEYWORDS = ("StudyInstanceUID", "FrameOfReferenceUID", "SeriesNumber", "SeriesDescription", "Modality")


def fill_sop_uids_from_file_meta(dataset: Dataset) -> list[str]:
    """Copy a blank SOPInstanceUID or SOPClassUID from the file meta header and return the keywords filled."""
    meta = getattr(dataset, "file_meta", None) or Dataset()
    filled = []
    for keyword, meta_keyword in META_UID_KEYWORDS:
        if not dataset.get(keyword) and meta.get(meta_keyword):
            setattr(dataset, keyword, meta.get(meta_keyword))
            filled.append(keyword)
    return filled


def derive_blank_study_and_series_uids(datasets: list[Dataset]) -> None:
    """Give instances with a blank StudyInstanceUID or SeriesInstanceUID a UID derived from their group.

    Blank-study instances of one folder form one study. Blank-series instances form one
    series per folder, study, frame of reference, series number, description and modality.
    The UIDs are derived from the SOP Instance UIDs of the group, so reading the same files
    again gives the same UIDs. Each dataset's folder comes from its ``filename``.
    """
    blank_study: dict[str, list[Dataset]] = defaultdict(list)
    for dataset in datasets:
        if not dataset.get("StudyInstanceUID"):
            blank_study[str(Path(dataset.filename).parent)].append(dataset)
    for folder, members in blank_study.items():
        study_uid = generate_uid(entropy_srcs=["study", *sorted(str(d.SOPInstanceUID) for d in members)])
        for dataset in members:
            dataset.StudyInstanceUID = study_uid
        logger.warning(
            "%d files in %s have a blank StudyInstanceUID; using %s, derived from their SOP Instance UIDs",
            len(members), folder, study_uid,
        )

    blank_series: dict[tuple, list[Dataset]] = defaultdict(list)
    for dataset in datasets:
        if not dataset.get("SeriesInstanceUID"):
            key = tuple(str(dataset.get(keyword) or "") for keyword in SERIES_GROUP_KEYWORDS)
            blank_series[(str(Path(dataset.filename).parent), *key)].append(dataset)
    for key, members in blank_series.items():
        series_uid = generate_uid(entropy_srcs=["series", *key[1:], *sorted(str(d.SOPInstanceUID) for d in members)])
        for dataset in members:
            dataset.SeriesInstanceUID = series_uid
        logger.warning(
            "%d files in %s have a blank SeriesInstanceUID; using %s, derived from their SOP Instance UIDs. "
            "The SEG refers to this derived UID, which no archive knows",
            len(members), key[0], series_uid,
        )


def read_series(folder: str | Path, stop_before_pixels: bool = True) -> list[Dataset]:
    """Read every file of one series folder (not its subfolders), in file name order, and repair blank UIDs.

    Blank SOP UIDs are taken from the file meta header and blank study and series UIDs are
    derived as in :func:`derive_blank_study_and_series_uids`. By default the pixel data is not
    read, because building or reading a SEG needs only the headers. Raises FileNotFoundError
    for a folder without files and pydicom's InvalidDicomError for a file that is not DICOM.
    """
    folder = Path(folder)
    datasets = []
    filled_from_meta = []
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        dataset = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
        if fill_sop_uids_from_file_meta(dataset):
            filled_from_meta.append(path.name)
        datasets.append(dataset)
    if not datasets:
        raise FileNotFoundError(f"no DICOM files in {folder}")
    if filled_from_meta:
        logger.warning(
            "%d files in %s have a blank SOPInstanceUID or SOPClassUID, taken from their file meta header",
            len(filled_from_meta), folder,
        )
    derive_blank_study_and_series_uids(datasets)
    return datasets
