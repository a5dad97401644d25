"""Fixtures of the Deploy app tests: DICOM series built from the shared 20-slice CT, and a runner for the app.

Faulty series are copies of a small series cut from the shared one, edited with pydicom
in tmp_path. The app runs as a user runs it: `python deploy_app ...` in a subprocess.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from deploy_test_helpers import APP_DIR, REPO_ROOT, limit_child_process, read_series
from gcis.dicom.series import fill_sop_uids_from_file_meta
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

# Rows and columns cut from the 512 x 512 slices. The crop keeps the spine, the aorta, the posterior body
# wall and air behind it, so it still passes the CT intensity check and fits in one 32-voxel window at 6 mm.
SMALL_ROWS = slice(250, 410)
SMALL_COLUMNS = slice(176, 336)
APP_TIMEOUT_S = 600


@pytest.fixture(scope="session")
def example_series(shared_data) -> Path:
    """The shared 20-slice abdominal CT series (JPEG 2000 lossless, blank Study/Series/SOP UIDs in the datasets)."""
    return shared_data / "totalsegmentator" / "example_ct_dicom"


@pytest.fixture(scope="session")
def small_series(tmp_path_factory, example_series) -> Path:
    """A 20-slice, 160 x 160 uncompressed crop of the shared series with complete UIDs: slice_000.dcm ... slice_019.dcm."""
    folder = tmp_path_factory.mktemp("small_series")
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    for index, dataset in enumerate(read_series(example_series)):
        dataset.decompress()
        pixels = dataset.pixel_array[SMALL_ROWS, SMALL_COLUMNS]
        spacing = [float(v) for v in dataset.PixelSpacing]
        position = np.asarray(dataset.ImagePositionPatient, dtype=float)
        cosines = np.asarray(dataset.ImageOrientationPatient, dtype=float)
        position += SMALL_COLUMNS.start * spacing[1] * cosines[:3] + SMALL_ROWS.start * spacing[0] * cosines[3:]

        dataset.PixelData = np.ascontiguousarray(pixels).tobytes()
        dataset.Rows, dataset.Columns = pixels.shape
        dataset.ImagePositionPatient = [round(float(v), 4) for v in position]
        for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue"):
            if keyword in dataset:
                del dataset[keyword]
        dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        fill_sop_uids_from_file_meta(dataset)
        dataset.StudyInstanceUID = study_uid
        dataset.SeriesInstanceUID = series_uid
        dataset.FrameOfReferenceUID = frame_uid
        dataset.SeriesNumber = 3
        dataset.save_as(folder / f"slice_{index:03d}.dcm")
    return folder


Edit = Callable[[int, pydicom.Dataset], "pydicom.Dataset | list[pydicom.Dataset] | None"]


@pytest.fixture()
def edited_copy(tmp_path) -> Callable[..., Path]:
    """Return copy(source, edit, name): the series copied with edit(index, dataset) applied to each slice.

    `edit` returns the dataset to write, None to drop the slice, or a list of datasets
    (written as slice_NNN.dcm, slice_NNN_1.dcm, ...) to add slices.
    """

    def copy(source: Path, edit: Edit | None = None, name: str = "series") -> Path:
        target = tmp_path / name
        target.mkdir(parents=True, exist_ok=True)
        for index, dataset in enumerate(read_series(source)):
            result = edit(index, dataset) if edit else dataset
            if result is None:
                continue
            outputs = result if isinstance(result, list) else [result]
            for number, output in enumerate(outputs):
                suffix = f"_{number}" if number else ""
                output.save_as(target / f"slice_{index:03d}{suffix}.dcm")
        return target

    return copy


@pytest.fixture(scope="session")
def run_app() -> Callable[..., subprocess.CompletedProcess]:
    """Return run(args, env=None): `python deploy_app ARGS` from the repository root, output captured."""

    def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("HOLOSCAN_")}
        environment.update(env or {})
        return subprocess.run(
            [sys.executable, str(APP_DIR), *map(str, args)],
            cwd=REPO_ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=APP_TIMEOUT_S,
            preexec_fn=limit_child_process,
        )

    return run


@pytest.fixture()
def copy_files(tmp_path) -> Callable[..., Path]:
    """Return copy(paths, name): the given files copied into a new folder under tmp_path."""

    def copy(paths: list[Path], name: str = "input") -> Path:
        target = tmp_path / name
        target.mkdir(parents=True, exist_ok=True)
        for path in paths:
            shutil.copy2(path, target / path.name)
        return target

    return copy
