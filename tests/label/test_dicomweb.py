"""The gCIS MONAI Label app on a DICOMweb datastore: a real Orthanc on a loopback port, and OHIF in Chromium.

Orthanc contains the shared 20-slice CT series twice, in two studies: uncompressed (used for
labels and by OHIF) and as stored, in JPEG 2000 lossless (used for inference, which must work
without the server transcoding). Before the app's server starts, Orthanc also gets a DICOM SEG
of the uncompressed series written by the app's own SEG code, so the first request that lists
training data must read a SEG from the server. The tests run in file order.
"""

from __future__ import annotations

import json
import os
import time
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
import SimpleITK as sitk
from label_servers import HeadlessChromium, LabelServer
from lib.dicom_seg import read_seg, write_seg
from lib.labels import check_label
from PIL import Image

from gcis.catalogue import load_catalogue
from gcis.data.geometry import read_volume
from gcis.dicom.series import read_series

REQUEST_TIMEOUT_S = 600
OHIF_TIMEOUT_S = 300
# Pixels of the screenshot that are grey (no colour cast) and neither black nor white: CT tissue.
# OHIF's interface is dark blue with white text, so an empty viewport has almost none.
MIN_CT_PIXELS = 20000


@pytest.fixture(scope="module")
def prior_label(tmp_path_factory, orthanc, ct_series, series_label):
    """Store a SEG of the series' TotalSegmentator label in Orthanc; return the expected catalogue-id label."""
    catalogue = load_catalogue()
    checked = check_label(series_label, read_volume(ct_series), catalogue)
    folder = tmp_path_factory.mktemp("prior_seg")
    seg = write_seg(checked.image, checked.annotated, read_series(ct_series), catalogue, folder / "seg.dcm")
    orthanc.upload(seg)
    return checked


@pytest.fixture(scope="module")
def server(tmp_path_factory, orthanc, prior_label, tiny_checkpoint_file):
    work = tmp_path_factory.mktemp("dicomweb_server")
    # Overlap 0 takes the fewest windows for the 512 x 512 x 20 series.
    label_server = LabelServer(work, orthanc.dicomweb_url, tiny_checkpoint_file, work / "model", conf={"overlap": "0"})
    label_server.start()
    yield label_server
    label_server.stop()


@pytest.fixture(scope="module")
def series_uid(ct_series) -> str:
    return str(read_series(ct_series)[0].SeriesInstanceUID)


def seg_series(orthanc) -> dict[str, str]:
    """Return {SeriesInstanceUID: Orthanc series id} of every SEG series in Orthanc."""
    found = {}
    for orthanc_id in requests.get(f"{orthanc.url}/series", timeout=60).json():
        tags = requests.get(f"{orthanc.url}/series/{orthanc_id}", timeout=60).json()["MainDicomTags"]
        if tags.get("Modality") == "SEG":
            found[tags["SeriesInstanceUID"]] = orthanc_id
    return found


def test_dicomweb_lists_the_ct_series(server):
    status = requests.get(server.url("/datastore/"), timeout=60).json()
    assert status["total"] == 2
    assert status["completed"] == 1  # the prior SEG references the uncompressed series


def test_dicomweb_training_list_reads_seg(server, prior_label):
    items = requests.get(server.url("/datastore/"), params={"output": "train"}, timeout=REQUEST_TIMEOUT_S).json()
    assert len(items) == 1
    label = sitk.ReadImage(items[0]["label"])
    assert np.array_equal(sitk.GetArrayFromImage(label), sitk.GetArrayFromImage(prior_label.image))


def test_dicomweb_infer_jpeg2000_series(server, ct_series_jpeg2000):
    series_uid = str(read_series(ct_series_jpeg2000)[0].SeriesInstanceUID)
    response = requests.post(
        server.url("/infer/gcis"), params={"image": series_uid, "output": "image"}, timeout=REQUEST_TIMEOUT_S
    )
    assert response.status_code == 200, response.text
    path = server.work / "series_result.nii.gz"
    path.write_bytes(response.content)
    label, image = sitk.ReadImage(str(path)), read_volume(ct_series_jpeg2000)
    assert label.GetSize() == image.GetSize()
    assert np.allclose(label.GetOrigin(), image.GetOrigin(), atol=1e-3)
    assert np.allclose(label.GetDirection(), image.GetDirection(), atol=1e-5)


def test_dicomweb_save_label_stores_seg(server, orthanc, series_uid, series_label, ct_series, tmp_path):
    catalogue = load_catalogue()
    before = set(seg_series(orthanc))
    # Partial label in Slicer's form: three segments named in label_info, on the flipped-y storage grid.
    source = sitk.ReadImage(str(series_label))
    values = sitk.GetArrayFromImage(source)
    upload = np.zeros_like(values)
    for index, name in enumerate(["liver", "spleen", "adrenal_gland_right"], start=1):
        upload[values == catalogue.get(name).id] = index
    label = sitk.GetImageFromArray(upload)
    label.CopyInformation(source)
    sitk.WriteImage(label, str(tmp_path / "label.nii.gz"))
    label_info = [{"name": "Liver", "idx": 1}, {"name": "Spleen", "idx": 2}, {"name": "right adrenal gland", "idx": 3}]

    response = requests.put(
        server.url("/datastore/label"), params={"image": series_uid, "tag": "final"},
        data={"params": json.dumps({"label_info": label_info})},
        files={"label": ("label.nii.gz", (tmp_path / "label.nii.gz").read_bytes())}, timeout=REQUEST_TIMEOUT_S,
    )
    assert response.status_code == 200, response.text

    new = set(seg_series(orthanc)) - before
    assert len(new) == 1
    instances = requests.get(f"{orthanc.url}/series/{seg_series(orthanc)[new.pop()]}/instances", timeout=60).json()
    content = requests.get(f"{orthanc.url}/instances/{instances[0]['ID']}/file", timeout=60).content
    (tmp_path / "stored_seg.dcm").write_bytes(content)
    seg = pydicom.dcmread(BytesIO(content))

    assert seg.Modality == "SEG"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series_uid
    assert seg.StudyInstanceUID == read_series(ct_series)[0].StudyInstanceUID
    segments = {item.SegmentLabel: item for item in seg.SegmentSequence}
    expected_names = [catalogue.get(name).display_name for name in ("spleen", "liver", "adrenal_gland_right")]
    assert sorted(segments) == sorted(expected_names)
    for name in ("spleen", "liver", "adrenal_gland_right"):
        task = catalogue.get(name)
        item = segments[task.display_name]
        assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue == task.snomed["property_type"]["code"]
        assert item.SegmentedPropertyTypeCodeSequence[0].CodeMeaning == task.snomed["property_type"]["meaning"]
        assert item.SegmentedPropertyCategoryCodeSequence[0].CodeValue == task.snomed["property_category"]["code"]
    adrenal_type = segments[catalogue.get("adrenal_gland_right").display_name].SegmentedPropertyTypeCodeSequence[0]
    assert adrenal_type.SegmentedPropertyTypeModifierCodeSequence[0].CodeValue == "24028007"

    reference = read_volume(ct_series)
    decoded, annotated = read_seg(tmp_path / "stored_seg.dcm", read_series(ct_series), reference, catalogue)
    assert annotated == ["spleen", "liver", "adrenal_gland_right"]
    expected = check_label(tmp_path / "label.nii.gz", reference, catalogue, label_info).image
    assert np.array_equal(sitk.GetArrayFromImage(decoded), sitk.GetArrayFromImage(expected))


@pytest.mark.parametrize(
    ("image", "status", "message"),
    [
        ("not-a-uid", 400, "not a DICOM Series Instance UID"),
        ("../../etc", 400, "is a path"),
        ("1.2.3.4.5", 404, "not found on the DICOMweb server"),
    ],
)
def test_dicomweb_rejects_bad_image_ids(server, image, status, message):
    response = requests.post(server.url("/infer/gcis"), params={"image": image, "output": "json"}, timeout=REQUEST_TIMEOUT_S)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def ct_pixel_count(png: bytes) -> int:
    pixels = np.asarray(Image.open(BytesIO(png)).convert("RGB")).astype(int)
    grey = pixels.max(axis=-1) - pixels.min(axis=-1) < 12
    brightness = pixels.mean(axis=-1)
    return int((grey & (brightness > 40) & (brightness < 250)).sum())


@pytest.mark.skipif(not HeadlessChromium.available(), reason="chromium and chromium-driver are not installed")
def test_ohif_shows_the_study(server, ct_series, tmp_path):
    study_uid = read_series(ct_series)[0].StudyInstanceUID
    browser = HeadlessChromium(tmp_path)
    browser.start()
    try:
        browser.open(server.url(f"/ohif/viewer?StudyInstanceUIDs={study_uid}"))
        deadline = time.monotonic() + OHIF_TIMEOUT_S
        count = 0
        while time.monotonic() < deadline and count < MIN_CT_PIXELS:
            time.sleep(5)
            png = browser.screenshot()
            count = ct_pixel_count(png)
        errors = browser.console_errors()
    finally:
        browser.stop()

    target = Path(os.environ.get("GCIS_OHIF_SCREENSHOT", tmp_path / "ohif_screenshot.png"))
    target.write_bytes(png)
    assert count >= MIN_CT_PIXELS, f"the OHIF viewport shows no CT ({count} grey pixels); see {target}. Errors: {errors[:5]}"
