"""Local-folder datastore that checks ids, tags and label files before writing anything.

MONAI Label's LocalDatastore joins request values into file paths: an image id such as
``../../x`` or a label tag such as ``../../x`` would write outside the studies folder, and a
label file is stored without being read. This subclass rejects such requests with a 4xx
response and stores every label in catalogue ids on its image's grid (see lib.labels).
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path
from typing import Any, Dict

import SimpleITK as sitk
from fastapi import HTTPException
from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.datastore import DefaultLabelTag

from gcis.catalogue import TaskCatalogue, load_catalogue
from gcis.data.datalist import Case
from gcis.data.geometry import InvalidInputError, check_ct, read_volume
from lib.labels import CheckedLabel, LabelError, check_label

logger = logging.getLogger(__name__)

IMAGE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")
TAG_PATTERN = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def check_image_id(image_id: str) -> None:
    """Raise a 400 response unless the id is a plain file stem (no folder part, no '..')."""
    if not isinstance(image_id, str) or not IMAGE_ID_PATTERN.match(image_id) or ".." in image_id:
        raise HTTPException(
            status_code=400,
            detail=f"image id {image_id!r} is invalid; use letters, digits, '_', '-' and '.' (no '..' or '/')",
        )


def check_tag(tag: str) -> None:
    """Raise a 400 response unless the label tag is a plain folder name."""
    if not isinstance(tag, str) or not TAG_PATTERN.match(tag):
        raise HTTPException(
            status_code=400, detail=f"label tag {tag!r} is invalid; use letters, digits, '_' and '-' (at most 64)"
        )


def check_upload(
    image_id: str, image_uri: str, label_filename: str, label_info: Dict[str, Any], catalogue: TaskCatalogue
) -> CheckedLabel:
    """Check an uploaded label against its image; raise a 400 response that gives the reason when it is invalid."""
    label_info = label_info or {}
    reference = sitk.ReadImage(image_uri)
    try:
        return check_label(label_filename, reference, catalogue, label_info.get("label_info"), label_info.get("annotated"))
    except LabelError as error:
        logger.warning("rejected label for image %s: %s", image_id, error)
        raise HTTPException(status_code=400, detail=f"invalid label for image {image_id!r}: {error}") from error


def store_label(
    datastore: LocalDatastore, image_id: str, checked: CheckedLabel, label_tag: str, label_info: Dict[str, Any]
) -> str:
    """Write a checked label into the local folder with LocalDatastore.save_label; return the label id."""
    label_info = {**(label_info or {}), **checked.info()}
    with tempfile.TemporaryDirectory(prefix="gcis-label-") as folder:
        path = Path(folder) / "label.nii.gz"
        sitk.WriteImage(checked.image, str(path), useCompression=True)
        label_id = LocalDatastore.save_label(datastore, image_id, str(path), label_tag, label_info)
    logger.info("stored %s label of image %s: %s", label_tag, image_id, ", ".join(checked.annotated) or "no structures")
    return label_id


class GCISLocalDatastore(LocalDatastore):
    """LocalDatastore with checked image ids, tags, image uploads and label files."""

    def __init__(self, *args, catalogue: TaskCatalogue | None = None, **kwargs):
        self.catalogue = catalogue or load_catalogue()
        super().__init__(*args, **kwargs)

    def add_image(self, image_id: str, image_filename: str, image_info: Dict[str, Any]) -> str:
        if image_id:
            check_image_id(image_id)
        try:
            check_ct(read_volume(image_filename), f"uploaded image {image_id or Path(image_filename).name}")
        except (InvalidInputError, FileNotFoundError) as error:
            raise HTTPException(status_code=400, detail=str(error)) from error
        return super().add_image(image_id, image_filename, image_info)

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: Dict[str, Any]) -> str:
        check_tag(label_tag)
        image_uri = self.get_image_uri(image_id) if isinstance(image_id, str) else ""
        if not image_uri:
            raise HTTPException(status_code=404, detail=f"image {image_id!r} not found in the datastore")
        checked = check_upload(image_id, image_uri, label_filename, label_info, self.catalogue)
        return store_label(self, image_id, checked, label_tag, label_info)


def labelled_cases(datastore: LocalDatastore, catalogue: TaskCatalogue) -> list[Case]:
    """Return a gcis Case for every image with a final label, with the structures the label annotates.

    Works for both datastores of this app: the DICOMweb one keeps a local copy of each image
    and label, which ``datalist()`` refreshes from the DICOMweb server first.
    """
    datastore.datalist()
    names = {task.id: task.name for task in catalogue}
    cases = []
    for image_id in LocalDatastore.get_labeled_images(datastore):
        info = datastore.get_label_info(image_id, DefaultLabelTag.FINAL)
        annotated = info.get("annotated")
        cases.append(
            Case(
                image=Path(datastore.get_image_uri(image_id)),
                label=Path(LocalDatastore.get_label_uri(datastore, image_id, DefaultLabelTag.FINAL)),
                labels=names,
                # A label without an "annotated" entry (a file put in labels/final by hand) counts its structures with voxels.
                annotated=list(annotated) if annotated is not None else None,
                case_id=image_id,
            )
        )
    return cases
