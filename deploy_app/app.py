"""gCIS MONAI Deploy application: a DICOM CT series in, a DICOM SEG of the structures found out.

Run from the repository root::

    python deploy_app -i DICOM_FOLDER -o OUTPUT_FOLDER [-m WEIGHTS] [--tasks liver spleen]

Exit status: 0 on success, 2 for an invalid command line, unknown tasks or missing weights,
3 when the input contains no CT series that can be segmented, 1 for any other failure.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import gcis
from gcis.dicom.seg import AlgorithmInfo
from monai.deploy.conditions import CountCondition
from monai.deploy.core import AppContext, Application

from gcis_deploy.errors import ConfigurationError, InputError, TaskSelectionError, WeightsNotFoundError
from gcis_deploy.inference_operator import GCISInferenceOperator, load_segmenter
from gcis_deploy.label_outputs import LabelMapFileWriterOperator
from gcis_deploy.options import AppSettings, parse_command_line, resolve_weights, weights_digest
from gcis_deploy.seg_writer import DICOMSegWriterOperator
from gcis_deploy.series_selector import CTSeriesSelectorOperator
from gcis_deploy.study_loader import DICOMStudyLoaderOperator
from gcis_deploy.volume import CTSeriesToVolumeOperator

logger = logging.getLogger("gcis_deploy.app")

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INPUT_REJECTED = 3


class GCISSegmentationApp(Application):
    """Load DICOM, select the CT series, convert it to a volume, segment it with gCIS and write a DICOM SEG."""

    def __init__(self, argv: list[str], *args, settings: AppSettings, app_context: AppContext, **kwargs):
        self.settings = settings
        self.app_context = app_context
        super().__init__(argv, *args, **kwargs)

    def compose(self):
        settings = self.settings
        input_folder = Path(self.app_context.input_path)
        output_folder = Path(self.app_context.output_path)
        weights = resolve_weights(self.app_context.model_path)
        algorithm = AlgorithmInfo(
            version=gcis.__version__,
            parameters={"weights": weights.name, "weights_sha256": weights_digest(weights)},
        )
        logger.info("input %s, output %s, weights %s (sha256 %s...)", input_folder, output_folder, weights,
                    algorithm.parameters["weights_sha256"])

        study_loader = DICOMStudyLoaderOperator(
            self, CountCondition(self, 1), input_folder=input_folder, name="study_loader"
        )
        series_selector = CTSeriesSelectorOperator(self, rules_path=settings.selection_rules, name="series_selector")
        series_to_volume = CTSeriesToVolumeOperator(self, name="series_to_volume")
        # Loaded here, before the graph runs, so that a bad task list fails before any DICOM file is read.
        segmenter, tasks = load_segmenter(
            weights, settings.tasks, device=settings.device, overlap=settings.overlap, batch_size=settings.batch_size
        )
        inference = GCISInferenceOperator(self, segmenter=segmenter, tasks=tasks, name="gcis_inference")
        seg_writer = DICOMSegWriterOperator(
            self,
            output_folder=output_folder,
            algorithm=algorithm,
            segmentation_type=settings.segmentation_type,
            omit_empty_frames=settings.omit_empty_frames,
            name="seg_writer",
        )

        self.add_flow(study_loader, series_selector, {("dicom_study_list", "dicom_study_list")})
        self.add_flow(series_selector, series_to_volume, {("study_selected_series_list", "study_selected_series_list")})
        self.add_flow(series_to_volume, inference, {("image", "image")})
        self.add_flow(inference, seg_writer, {("segmentation", "segmentation")})
        self.add_flow(series_selector, seg_writer, {("study_selected_series_list", "study_selected_series_list")})

        if settings.nifti or settings.stl:
            label_writer = LabelMapFileWriterOperator(
                self, output_folder=output_folder, nifti=settings.nifti, stl=settings.stl, name="label_map_writer"
            )
            self.add_flow(inference, label_writer, {("segmentation", "segmentation")})


def main(argv: list[str] | None = None) -> int:
    """Run the app on the command line `argv` (sys.argv by default); return the exit status."""
    argv = list(sys.argv if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [%(levelname)s] (%(name)s) - %(message)s")
    try:
        settings, sdk_argv = parse_command_line(argv)
        app_context = Application.init_app_context(sdk_argv)
        input_folder = Path(app_context.input_path)
        if not input_folder.is_dir():
            raise InputError(f"input {input_folder} is not a folder; give the folder that contains the DICOM series")
        app = GCISSegmentationApp(sdk_argv, settings=settings, app_context=app_context)
        app.run()
    except InputError as error:
        logger.error("input rejected: %s", error)
        return EXIT_INPUT_REJECTED
    except (ConfigurationError, TaskSelectionError, WeightsNotFoundError) as error:
        logger.error("invalid request: %s", error)
        return EXIT_USAGE
    except Exception:
        logger.exception("the gCIS app failed")
        return EXIT_FAILURE
    logger.info("done: results in %s", app_context.output_path)
    return 0
