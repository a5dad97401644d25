"""Loading a folder of DICOM files into the SDK's DICOMStudy objects.

The SDK's DICOMDataLoaderOperator is reused for file listing and for filling study and
series attributes. Its grouping step is replaced because of three behaviours that this
app cannot accept (monai-deploy-app-sdk 4.0):

- An instance whose StudyInstanceUID or SeriesInstanceUID is blank, as in some
  de-identified exports, is skipped with a warning, so such a series vanishes.
- Of several instances at the same ImagePositionPatient only one is kept (the highest
  AcquisitionNumber), silently mixing acquisitions. Here all are kept so that the series
  checks reject the series and name the files.
- A folder without DICOM files raises an error that does not say what was found.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

from gcis.dicom.series import derive_blank_study_and_series_uids, fill_sop_uids_from_file_meta
from monai.deploy.core.domain.dicom_series import DICOMSeries
from monai.deploy.core.domain.dicom_study import DICOMStudy
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from gcis_deploy.errors import InputError

logger = logging.getLogger(__name__)

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR
LISTED_EXAMPLES = 3


def describe_files(paths: list[str], limit: int = LISTED_EXAMPLES) -> str:
    """Return "a.dcm, b.dcm and 4 more" for a list of paths."""
    names = [Path(p).name for p in paths]
    listed = ", ".join(names[:limit])
    return listed if len(names) <= limit else f"{listed} and {len(names) - limit} more"


class DICOMStudyLoaderOperator(DICOMDataLoaderOperator):
    """Load the DICOM files below a folder into a list of DICOMStudy objects.

    Named output:
        dicom_study_list: list of DICOMStudy, as from the SDK's DICOMDataLoaderOperator.

    Differences from the SDK loader:
        1. An empty folder, or one without DICOM files, raises InputError listing what was found.
        2. A blank SOPInstanceUID or SOPClassUID is filled from the file meta header. A blank
           StudyInstanceUID or SeriesInstanceUID is replaced by a UID derived from the SOP Instance
           UIDs of the files it groups (same folder, study, frame of reference, series number,
           description and modality), with gcis.dicom.series. Both changes stay in memory and are
           logged as warnings.
        3. Instances at the same position are all kept; only a second file of the same SOP
           Instance UID is dropped.
    """

    def load_data_to_studies(self, input_path: Path) -> list[DICOMStudy]:
        input_path = Path(input_path)
        if not input_path.is_dir():
            raise InputError(f"input {input_path} is not a folder; give the folder that contains the DICOM series")
        files: list[str] = []
        self._list_files(input_path, files)
        if not files:
            raise InputError(f"input folder {input_path} is empty; it must contain the DICOM files of a CT series")
        studies = self._load_data(sorted(files))
        if not studies:
            raise InputError(
                f"input folder {input_path} contains {len(files)} file{'s' if len(files) != 1 else ''} "
                "but none is a DICOM image "
                f"({self._skipped_summary()})"
            )
        return studies

    def _load_data(self, files: list[str]) -> list[DICOMStudy]:
        self._skipped: list[tuple[str, str]] = []
        self._filled_from_meta: list[str] = []
        datasets = []
        for path in files:
            dataset = self._read(path)
            if dataset is not None:
                datasets.append(dataset)
        if self._filled_from_meta:
            logger.warning(
                "%d files have a blank SOPInstanceUID or SOPClassUID, taken from their file meta header (%s)",
                len(self._filled_from_meta), describe_files(self._filled_from_meta),
            )
        derive_blank_study_and_series_uids(datasets)

        studies: dict[str, DICOMStudy] = {}
        series_by_uid: dict[str, DICOMSeries] = {}
        first_file_of_instance: dict[tuple[str, str], str] = {}
        for dataset in datasets:
            series_uid = str(dataset.SeriesInstanceUID)
            key = (series_uid, str(dataset.SOPInstanceUID))
            if key in first_file_of_instance:
                logger.warning(
                    "ignored %s: it contains SOP instance %s of series %s, already read from %s",
                    dataset.filename, dataset.SOPInstanceUID, series_uid, first_file_of_instance[key],
                )
                continue
            try:
                series = self._series_of(dataset, studies, series_by_uid)
            except (TypeError, ValueError, IndexError, AttributeError) as error:
                # The SDK's attribute parsing fails on malformed values such as a one-number PixelSpacing.
                self._skipped.append((dataset.filename, f"invalid study or series attribute ({error})"))
                continue
            first_file_of_instance[key] = dataset.filename
            series.add_sop_instance(dataset)

        for path, reason in self._skipped:
            logger.warning("skipped %s: %s", path, reason)
        logger.info(
            "loaded %d DICOM instances of %d series in %d studies; skipped %d files",
            len(first_file_of_instance), len(series_by_uid), len(studies), len(self._skipped),
        )
        return list(studies.values())

    def _series_of(self, dataset: Dataset, studies: dict[str, DICOMStudy],
                   series_by_uid: dict[str, DICOMSeries]) -> DICOMSeries:
        """Return the DICOMSeries of the dataset, creating it and its DICOMStudy with the SDK's attribute parsing."""
        series_uid = str(dataset.SeriesInstanceUID)
        if series_uid in series_by_uid:
            return series_by_uid[series_uid]
        study_uid = str(dataset.StudyInstanceUID)
        study = studies.get(study_uid)
        if study is None:
            study = DICOMStudy(study_uid)
            self.populate_study_attributes(study, dataset)
        series = DICOMSeries(series_uid)
        self.populate_series_attributes(series, dataset)
        studies[study_uid] = study
        study.add_series(series)
        series_by_uid[series_uid] = series
        return series

    def _read(self, path: str) -> Dataset | None:
        """Read one file, fill blank SOP UIDs from its meta header; return None (and record why) if unusable."""
        try:
            dataset = dcmread(path)
        except InvalidDicomError as error:
            self._skipped.append((path, f"not a DICOM file ({error})"))
            return None
        except (OSError, EOFError, ValueError, KeyError, TypeError) as error:
            # pydicom raises these for truncated or malformed files.
            self._skipped.append((path, f"unreadable DICOM file ({type(error).__name__}: {error})"))
            return None

        if fill_sop_uids_from_file_meta(dataset):
            self._filled_from_meta.append(path)

        if not dataset.get("SOPInstanceUID"):
            self._skipped.append((path, "no SOP Instance UID in the dataset or its file meta header"))
            return None
        if dataset.get("SOPClassUID") == MEDIA_STORAGE_DIRECTORY:
            self._skipped.append((path, "DICOMDIR index file"))
            return None
        # An empty Series Number (type 2) would make the SDK's series attribute parsing fail on int(None).
        if "SeriesNumber" in dataset and dataset["SeriesNumber"].value in (None, ""):
            del dataset["SeriesNumber"]
        return dataset

    def _skipped_summary(self) -> str:
        reasons: dict[str, list[str]] = defaultdict(list)
        for path, reason in self._skipped:
            reasons[reason.split(" (")[0]].append(path)
        return "; ".join(f"{reason}: {describe_files(paths)}" for reason, paths in reasons.items())
