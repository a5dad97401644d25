"""Helpers of the Deploy app tests: series reading and editing, selection in-process, and the app subprocess."""

from __future__ import annotations

import os
import sys
from copy import deepcopy
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from gcis.benchmarking import raise_stack_limit

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_DIR = REPO_ROOT / "deploy_app"
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))

from gcis_deploy.options import DEFAULT_SELECTION_RULES  # noqa: E402
from gcis_deploy.series_selector import CTSeriesSelectorOperator  # noqa: E402
from gcis_deploy.study_loader import DICOMStudyLoaderOperator  # noqa: E402
from monai.deploy.core import Fragment  # noqa: E402


def read_series(folder: Path) -> list[pydicom.Dataset]:
    """Return the datasets of a series folder sorted by slice position (z)."""
    datasets = [pydicom.dcmread(path) for path in sorted(folder.iterdir()) if path.is_file()]
    return sorted(datasets, key=lambda d: float(d.ImagePositionPatient[2]))


def new_instance(dataset: pydicom.Dataset) -> pydicom.Dataset:
    """Return a copy of the dataset under a new SOP Instance UID."""
    copy = deepcopy(dataset)
    copy.SOPInstanceUID = generate_uid()
    copy.file_meta.MediaStorageSOPInstanceUID = copy.SOPInstanceUID
    return copy


def corrupt_codestream(index: int, dataset: pydicom.Dataset) -> pydicom.Dataset:
    """Overwrite the SIZ marker segment of slice 6's JPEG 2000 codestream, so that its header is unreadable."""
    if index == 6:
        data = bytearray(dataset.PixelData)
        start = data.find(b"\xff\x4f\xff\x51")
        data[start + 4 : start + 40] = b"\xff" * 36
        dataset.PixelData = bytes(data)
    return dataset


def select(folder: Path):
    """Load a folder and return the selector's output, a list of StudySelectedSeries (raises InputError)."""
    fragment = Fragment()
    loader = DICOMStudyLoaderOperator(fragment, input_folder=folder, name="loader")
    selector = CTSeriesSelectorOperator(fragment, rules_path=DEFAULT_SELECTION_RULES, name="selector")
    return selector.select(loader.load_data_to_studies(folder))


def select_series(folder: Path):
    """Return the one series that the app would segment."""
    selection = select(folder)
    assert len(selection) == 1
    assert len(selection[0].selected_series) == 1
    return selection[0].selected_series[0].series


def limit_child_process() -> None:
    """Run the app at low priority with the stack size that Holoscan expects."""
    os.nice(15)
    raise_stack_limit()


def assert_no_outputs(folder: Path) -> None:
    """Assert that a failed run left no SEG, no other result and no temporary file in `folder`."""
    leftovers = sorted(p.name for p in folder.rglob("*")) if folder.exists() else []
    assert leftovers == [], f"files left in {folder}: {leftovers}"
