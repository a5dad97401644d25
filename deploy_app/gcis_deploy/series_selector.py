"""Choosing the one CT series to segment: the SDK's attribute rules, then the volume checks."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from monai.deploy.core.domain.dicom_series import DICOMSeries
from monai.deploy.core.domain.dicom_series_selection import SelectedSeries, StudySelectedSeries
from monai.deploy.core.domain.dicom_study import DICOMStudy
from monai.deploy.operators.dicom_series_selector_operator import DICOMSeriesSelectorOperator

from gcis_deploy.errors import ConfigurationError, InputError
from gcis_deploy.series_checks import SeriesRequirements, series_problems

logger = logging.getLogger(__name__)


def load_selection_rules(path: Path) -> list[dict]:
    """Read and validate a selection rules file; return its list of selections.

    Each selection has a ``name``, SDK ``conditions`` (DICOM keyword to value, matched by
    DICOMSeriesSelectorOperator) and the app's own ``minimum_slices`` and ``orientation``.
    """
    try:
        rules = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"series selection rules {path} not found") from None
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"series selection rules {path} are not valid JSON: {error}") from error
    selections = rules.get("selections") if isinstance(rules, dict) else None
    if not selections or not isinstance(selections, list):
        raise ConfigurationError(f"series selection rules {path} need a non-empty list 'selections'")
    for index, selection in enumerate(selections):
        if not isinstance(selection, dict) or not isinstance(selection.get("conditions"), dict):
            raise ConfigurationError(f"selection {index} in {path} needs a 'conditions' mapping of DICOM keywords to values")
        try:
            requirements_of(selection)
        except (TypeError, ValueError) as error:
            raise ConfigurationError(f"selection {index} in {path}: {error}") from error
    return selections


def requirements_of(selection: dict) -> SeriesRequirements:
    defaults = SeriesRequirements()
    return SeriesRequirements(
        minimum_slices=int(selection.get("minimum_slices", defaults.minimum_slices)),
        orientation=selection.get("orientation", defaults.orientation),
    )


def describe_series(series: DICOMSeries) -> str:
    """Return "series 1.2.3 (number 4, 'CT Body', Modality CT, 20 instances)" for logs and errors."""
    details = []
    if series.SeriesNumber is not None:
        details.append(f"number {series.SeriesNumber}")
    if series.SeriesDescription:
        details.append(repr(str(series.SeriesDescription)))
    details.append(f"Modality {series.Modality}" if series.Modality else "no Modality")
    count = len(series.get_sop_instances())
    details.append(f"{count} instance{'s' if count != 1 else ''}")
    return f"series {series.SeriesInstanceUID} ({', '.join(details)})"


def image_type_of(series: DICOMSeries) -> str:
    """Return the ImageType of the series' first instance as DICOM writes it (ORIGINAL\\PRIMARY\\AXIAL)."""
    instances = series.get_sop_instances()
    value = instances[0].get_native_sop_instance().get("ImageType") if instances else None
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    return "\\".join(str(item) for item in value)


class CTSeriesSelectorOperator(DICOMSeriesSelectorOperator):
    """Select the one CT series of the input that the app segments.

    Named input:
        dicom_study_list: list of DICOMStudy.
    Named output:
        study_selected_series_list: a list of one StudySelectedSeries that contains the one selected series.

    Selections are tried in file order. For each, the SDK's attribute matching
    (DICOMSeriesSelectorOperator.filter with all matches, most instances first) gives the
    candidates, and :func:`series_checks.series_problems` removes those that do not form a
    regular volume. The first remaining candidate is selected and logged with the reasons
    for skipping the others. Raises InputError, listing every series and why it was not
    selected, when no candidate remains.
    """

    def __init__(self, fragment, *args, rules_path: Path, **kwargs):
        self.rules_path = Path(rules_path)
        self.selections = load_selection_rules(self.rules_path)
        super().__init__(fragment, *args, rules=json.dumps({"selections": self.selections}), all_matched=True,
                         sort_by_sop_instance_count=True, **kwargs)

    def compute(self, op_input, op_output, context):
        study_list = op_input.receive(self.input_name_study_list)
        op_output.emit(self.select(study_list), self.output_name_selected_series)

    def select(self, study_list: list[DICOMStudy]) -> list[StudySelectedSeries]:
        rejected: dict[str, tuple[DICOMSeries, list[str]]] = {}
        for selection in self.selections:
            name = selection.get("name", "")
            requirements = requirements_of(selection)
            matches = self.filter({"selections": [selection]}, study_list, all_matched=True,
                                  sort_by_sop_instance_count=True)
            for study_selection in matches:
                for selected in study_selection.selected_series:
                    series = selected.series
                    datasets = [sop.get_native_sop_instance() for sop in series.get_sop_instances()]
                    problems = series_problems(datasets, requirements)
                    if problems:
                        rejected[series.SeriesInstanceUID] = (series, problems)
                        continue
                    self._log_choice(series, name, study_list, rejected)
                    chosen = StudySelectedSeries(study_selection.study)
                    chosen.add_selected_series(SelectedSeries(name, series, None))
                    return [chosen]
        raise InputError(self._no_series_message(study_list, rejected))

    def _log_choice(self, series: DICOMSeries, selection_name: str, study_list: list[DICOMStudy],
                    rejected: dict[str, tuple[DICOMSeries, list[str]]]) -> None:
        logger.info("selected %s by selection %r", describe_series(series), selection_name)
        for other, problems in rejected.values():
            logger.warning("skipped %s: %s", describe_series(other), "; ".join(problems))
        others = [s for study in study_list for s in study.get_all_series()
                  if s is not series and s.SeriesInstanceUID not in rejected]
        for other in others:
            logger.info("not selected: %s, ImageType %s", describe_series(other), image_type_of(other))

    def _describe_conditions(self) -> str:
        """Return "'Axial original CT': Modality (?i)^CT$, ImageType ['ORIGINAL', ...]" for each selection."""
        described = []
        for selection in self.selections:
            conditions = ", ".join(f"{key} {value}" for key, value in selection["conditions"].items())
            described.append(f"{selection.get('name', '')!r}: {conditions}")
        return "; ".join(described)

    def _no_series_message(self, study_list: list[DICOMStudy],
                           rejected: dict[str, tuple[DICOMSeries, list[str]]]) -> str:
        all_series = [s for study in study_list for s in study.get_all_series()]
        lines = [f"no CT series to segment among the {len(all_series)} series of the input "
                 f"(selection rules: {self.rules_path.name})"]
        for series in all_series:
            if series.SeriesInstanceUID in rejected:
                lines.append(f"{describe_series(series)}: {'; '.join(rejected[series.SeriesInstanceUID][1])}")
            else:
                lines.append(
                    f"{describe_series(series)}: with ImageType {image_type_of(series)}, it does not match "
                    f"the conditions of any selection ({self._describe_conditions()})"
                )
        return "\n  ".join(lines)
