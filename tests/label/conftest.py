"""Fixtures of the MONAI Label app tests: real CTs in a studies folder, a DICOM series with complete UIDs, Orthanc.

The app's `lib` package is importable here because apps/gcis is put on sys.path. Unit tests
call its label, SEG and weights code directly, and the server tests run `gcis-label` in a subprocess.
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

from gcis.dicom.series import fill_sop_uids_from_file_meta

if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))


@pytest.fixture(scope="module")
def studies_dir(tmp_path_factory, shared_data) -> Path:
    """A studies folder with the three CTs of STUDIES, named <image id>.nii.gz."""
    folder = tmp_path_factory.mktemp("studies")
    for image_id, source in STUDIES.items():
        shutil.copyfile(shared_data / source, folder / f"{image_id}.nii.gz")
    return folder


def write_series(shared_data: Path, folder: Path, decompress: bool) -> Path:
    """Copy the shared 20-slice CT series into `folder` with new Study, Series and SOP Instance UIDs.

    The shared files have empty UIDs, which DICOMweb servers reject, and each copy needs its own. With `decompress` the
    pixel data is stored uncompressed (Explicit VR Little Endian) instead of JPEG 2000 lossless;
    the voxel values are the same.
    """
    study_uid, series_uid = generate_uid(), generate_uid()
    for path in sorted((shared_data / SERIES).iterdir()):
        dataset = pydicom.dcmread(path)
        if decompress:
            dataset.decompress()
        dataset.StudyInstanceUID = study_uid
        dataset.SeriesInstanceUID = series_uid
        fill_sop_uids_from_file_meta(dataset)
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        dataset.PatientID = "GCIS-TEST"
        dataset.PatientName = "Test^gCIS"
        dataset.StudyID = "1"
        dataset.SeriesNumber = 2
        dataset.save_as(folder / f"{dataset.SOPInstanceUID}.dcm")
    return folder


@pytest.fixture(scope="session")
def ct_series(tmp_path_factory, shared_data) -> Path:
    """The shared CT series, uncompressed, with complete UIDs.

    Uncompressed because OHIF gets its frames through MONAI Label's DICOMweb proxy, which does
    not pass on the viewer's Accept header, so the server would have to decode JPEG 2000 itself.
    """
    return write_series(shared_data, tmp_path_factory.mktemp("ct_series"), decompress=True)


@pytest.fixture(scope="session")
def ct_series_jpeg2000(tmp_path_factory, shared_data) -> Path:
    """The shared CT series as stored (JPEG 2000 lossless), with complete UIDs, in a study of its own."""
    return write_series(shared_data, tmp_path_factory.mktemp("ct_series_jpeg2000"), decompress=False)


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
def orthanc(tmp_path_factory, ct_series, ct_series_jpeg2000):
    """A running Orthanc with DICOMweb, holding the CT series uncompressed and as JPEG 2000 (two studies)."""
    if Orthanc.executable() is None:
        pytest.fail("Orthanc not found; install the Debian packages orthanc and orthanc-dicomweb")
    server = Orthanc(tmp_path_factory.mktemp("orthanc"))
    server.start()
    for path in [*sorted(ct_series.iterdir()), *sorted(ct_series_jpeg2000.iterdir())]:
        server.upload(path)
    yield server
    server.stop()

