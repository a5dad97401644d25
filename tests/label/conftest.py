"""Fixtures of the MONAI Label app tests: real CTs in a studies folder, a DICOM series with complete UIDs, Orthanc.

The app's `lib` package is importable here (apps/gcis is put on sys.path), so unit tests can call
its label, SEG and weights code directly; the server tests run `gcis-label` in a subprocess.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pydicom
import pytest
import SimpleITK as sitk
from label_data import SERIES, SERIES_LABEL, STUDIES
from label_servers import APP_DIR, Orthanc
from pydicom.uid import generate_uid

if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))


@pytest.fixture(scope="module")
def studies_dir(tmp_path_factory, shared_data) -> Path:
    """A studies folder with the three CTs of STUDIES, named <image id>.nii.gz."""
    folder = tmp_path_factory.mktemp("studies")
    for image_id, source in STUDIES.items():
        shutil.copyfile(shared_data / source, folder / f"{image_id}.nii.gz")
    return folder


@pytest.fixture(scope="session")
def ct_series(tmp_path_factory, shared_data) -> Path:
    """The shared 20-slice CT series (JPEG 2000 lossless) with the Study, Series and SOP UIDs it lacks.

    The shared files have empty UIDs, which DICOMweb servers reject; the pixel data is unchanged.
    """
    folder = tmp_path_factory.mktemp("ct_series")
    study_uid, series_uid = generate_uid(), generate_uid()
    for path in sorted((shared_data / SERIES).iterdir()):
        dataset = pydicom.dcmread(path)
        dataset.StudyInstanceUID = study_uid
        dataset.SeriesInstanceUID = series_uid
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID
        dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID
        dataset.PatientID = "GCIS-TEST"
        dataset.PatientName = "Test^gCIS"
        dataset.StudyID = "1"
        dataset.SeriesNumber = 2
        dataset.save_as(folder / f"{dataset.SOPInstanceUID}.dcm")
    return folder


@pytest.fixture(scope="session")
def series_label(tmp_path_factory, shared_data) -> Path:
    """The series' TotalSegmentator label without value 64, the one value that is not a catalogue id."""
    label = sitk.ReadImage(str(shared_data / SERIES_LABEL))
    values = sitk.GetArrayFromImage(label)
    values[values == 64] = 0
    cleaned = sitk.GetImageFromArray(values)
    cleaned.CopyInformation(label)
    path = tmp_path_factory.mktemp("series_label") / "series_label.nii.gz"
    sitk.WriteImage(cleaned, str(path))
    return path


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory, ct_series):
    """A running Orthanc with DICOMweb, holding the CT series."""
    if Orthanc.executable() is None:
        pytest.fail("Orthanc not found; install the Debian packages orthanc and orthanc-dicomweb")
    server = Orthanc(tmp_path_factory.mktemp("orthanc"))
    server.start()
    for path in sorted(ct_series.iterdir()):
        server.upload(path)
    yield server
    server.stop()

