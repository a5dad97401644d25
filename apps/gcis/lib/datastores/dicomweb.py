"""DICOMweb datastore (for example Orthanc or a PACS) that stores final labels as highdicom DICOM SEG.

It differs from MONAI Label 0.8.5's DICOMWebDatastore in these ways:

- Final labels are written with highdicom (gcis.dicom.seg, through lib.dicom_seg) with
  catalogue codes, instead of pydicom-seg or the dcmqi ``itkimage2segimage`` tool, which MONAI Label would download.
- SEG series are read back with highdicom into catalogue-id label maps for training.
- Series are downloaded in the transfer syntax the server stores (JPEG 2000, for example), so
  servers that cannot transcode still work, and converted with the core's DICOM reader.
- Image ids must be DICOM UIDs and must name a series on the server: a bad id gets a 400
  response and an unknown one a 404, never a folder outside the cache or a 500.
- An unreachable or failing DICOMweb server gets a 502 response that names the server.
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path
from typing import Any, Dict

import requests
import SimpleITK as sitk
from fastapi import HTTPException
from monailabel.datastore.dicom import DICOMWebDatastore
from monailabel.datastore.local import LocalDatastore
from monailabel.datastore.utils.dicom import dicom_web_upload_dcm
from monailabel.interfaces.datastore import DefaultLabelTag

from gcis.catalogue import TaskCatalogue, load_catalogue
from gcis.data.geometry import InvalidInputError, read_volume
from gcis.dicom.series import read_series
from lib.datastores.local import check_tag, check_upload, store_label
from lib.dicom_seg import read_seg, write_seg

logger = logging.getLogger(__name__)

# DICOM UIDs (PS3.5 section 9.1): digits and dots, at most 64 characters.
UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def check_series_uid(image_id: str) -> None:
    if not isinstance(image_id, str) or len(image_id) > 64 or not UID_PATTERN.match(image_id):
        raise HTTPException(status_code=400, detail=f"image id {image_id!r} is not a DICOM Series Instance UID")


class GCISDicomWebDatastore(DICOMWebDatastore):
    """DICOMWebDatastore with checked ids, highdicom SEG labels and clear errors."""

    def __init__(self, *args, catalogue: TaskCatalogue | None = None, **kwargs):
        self.catalogue = catalogue or load_catalogue()
        super().__init__(*args, convert_to_nifti=True, **kwargs)

    def _series_folder(self, series_uid: str) -> Path:
        return Path(self._datastore.image_path()) / series_uid

    def _remote_error(self, action: str, error: Exception) -> HTTPException:
        logger.error("DICOMweb server %s failed to %s: %s", self._client.base_url, action, error)
        return HTTPException(status_code=502, detail=f"DICOMweb server {self._client.base_url} failed to {action}: {error}")

    def download_series(self, series_uid: str, folder: Path) -> None:
        """Save every instance of a series into `folder`, in whatever transfer syntax the server stores.

        MONAI Label's download requests Explicit VR Little Endian, and servers that cannot
        transcode (Orthanc without its GDCM plugin, for JPEG 2000) return an error for it.
        """
        found = self._client.search_for_series(search_filters={"SeriesInstanceUID": series_uid})
        if not found:
            raise HTTPException(status_code=404, detail=f"series {series_uid} not found on the DICOMweb server")
        study_uid = found[0]["0020000D"]["Value"][0]
        instances = self._client.retrieve_series(study_uid, series_uid, media_types=(("application/dicom", "*"),))
        folder.mkdir(parents=True, exist_ok=True)
        for instance in instances:
            instance.save_as(folder / f"{instance.SOPInstanceUID}.dcm")
        logger.info("downloaded series %s (%d instances) into %s", series_uid, len(instances), folder)

    def get_image_uri(self, image_id: str) -> str:
        """Return the NIfTI copy of a series, downloading and converting it on first use."""
        check_series_uid(image_id)
        nifti = Path(self._datastore.image_path()) / f"{image_id}.nii.gz"
        if nifti.is_file():
            return str(nifti.resolve())

        folder = self._series_folder(image_id)
        try:
            if not folder.is_dir() or not any(folder.iterdir()):
                self.download_series(image_id, folder)
            info = self._dicom_info(image_id)
        except requests.RequestException as error:
            raise self._remote_error(f"return series {image_id}", error) from error
        try:
            image = read_volume(folder)
        except InvalidInputError as error:
            raise HTTPException(status_code=400, detail=f"series {image_id} is not a CT volume: {error}") from error

        with tempfile.TemporaryDirectory(prefix="gcis-series-") as temporary:
            path = Path(temporary) / f"{image_id}.nii.gz"
            sitk.WriteImage(image, str(path), useCompression=True)
            LocalDatastore.add_image(self, image_id, str(path), info)
        return str(nifti.resolve())

    def get_label_uri(self, label_id: str, label_tag: str, image_id: str = "") -> str:
        local = LocalDatastore.get_label_uri(self, image_id or label_id, label_tag)
        if label_tag != DefaultLabelTag.FINAL or local:
            return local

        # `label_id` is a SEG series on the server; decode it into a label map stored under the image id.
        check_series_uid(label_id)
        seg_folder = Path(self._datastore.label_path(DefaultLabelTag.FINAL)) / label_id
        try:
            if not seg_folder.is_dir() or not any(seg_folder.iterdir()):
                self.download_series(label_id, seg_folder)
            image_uri = self.get_image_uri(image_id)
        except requests.RequestException as error:
            raise self._remote_error(f"return SEG series {label_id}", error) from error

        reference = sitk.ReadImage(image_uri)
        seg_file = next(path for path in sorted(seg_folder.iterdir()) if path.is_file())
        label, annotated = read_seg(seg_file, read_series(self._series_folder(image_id)), reference, self.catalogue)
        info = self._dicom_info(label_id)
        info.update({"annotated": annotated, "label_names": {name: self.catalogue.get(name).id for name in annotated}})
        with tempfile.TemporaryDirectory(prefix="gcis-seg-") as folder:
            path = Path(folder) / "label.nii.gz"
            sitk.WriteImage(label, str(path), useCompression=True)
            LocalDatastore.save_label(self, image_id, str(path), DefaultLabelTag.FINAL, info)
        logger.info("read SEG %s of series %s: %s", label_id, image_id, ", ".join(annotated) or "no known segments")
        return LocalDatastore.get_label_uri(self, image_id, DefaultLabelTag.FINAL)

    def save_label(
        self, image_id: str, label_filename: str, label_tag: str, label_info: Dict[str, Any], label_id: str = ""
    ) -> str:
        """Store the label locally and, for the final tag, as a DICOM SEG series on the DICOMweb server."""
        check_tag(label_tag)
        image_uri = self.get_image_uri(image_id)
        checked = check_upload(image_id, image_uri, label_filename, label_info, self.catalogue)
        label_info = dict(label_info or {})
        if label_tag != DefaultLabelTag.FINAL:
            return store_label(self, image_id, checked, label_tag, label_info)
        if not checked.annotated:
            raise HTTPException(status_code=400, detail="the label annotates no structure; a DICOM SEG needs one segment")

        with tempfile.TemporaryDirectory(prefix="gcis-seg-") as folder:
            seg_file = write_seg(
                checked.image, checked.annotated, read_series(self._series_folder(image_id)), self.catalogue,
                Path(folder) / "seg.dcm",
            )
            try:
                seg_series = dicom_web_upload_dcm(str(seg_file), self._client)
            except requests.RequestException as error:
                raise self._remote_error(f"store the SEG of series {image_id}", error) from error

        image_info = self.get_image_info(image_id)
        label_info.update(
            {
                "SeriesInstanceUID": seg_series,
                "Modality": "SEG",
                "PatientID": image_info.get("PatientID"),
                "StudyInstanceUID": image_info.get("StudyInstanceUID"),
            }
        )
        local_id = store_label(self, image_id, checked, label_tag, label_info)
        # The list of labelled series is cached (MONAI_LABEL_DICOMWEB_CACHE_EXPIRY); it just changed.
        DICOMWebDatastore.get_labeled_images.cache_clear()
        logger.info("stored SEG series %s for series %s", seg_series, image_id)
        return local_id
