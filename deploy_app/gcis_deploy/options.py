"""Command line and app config of the gCIS Deploy app, and the search for the weights file.

The MONAI Deploy SDK parses only its own options (-i, -o, -m, -w, -l), so this module
parses the gCIS options first and hands the SDK an argument list without them.
Settings come from, in order of precedence: the command line, the ``gcis`` section of
the app config YAML (``app.yaml`` beside the app, or ``$HOLOSCAN_CONFIG_PATH``), and
the defaults of :class:`AppSettings`.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml
from gcis.inference.sliding_window import DEFAULT_WINDOW_BATCH

from gcis_deploy.errors import ConfigurationError, WeightsNotFoundError

logger = logging.getLogger(__name__)

APP_DIR = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = APP_DIR / "app.yaml"
DEFAULT_SELECTION_RULES = APP_DIR / "series_selection.json"
CONFIG_SECTION = "gcis"
SEGMENTATION_TYPES = ("LABELMAP", "BINARY")
# Path of the repository's shipped weights, found from the app folder. The app uses it only when neither
# -m nor HOLOSCAN_MODEL_PATH names weights and the SDK's default "models" folder is absent.
REPOSITORY_WEIGHTS = APP_DIR.parent / "bundle" / "models" / "model.pt"
SDK_DEFAULT_MODEL_PATH = "models"


@dataclass
class AppSettings:
    """gCIS settings of one app run (the SDK keeps the input, output and model paths)."""

    # Task names or free-text prompts; empty means every task the weights were trained on.
    tasks: list[str] = field(default_factory=list)
    segmentation_type: str = "LABELMAP"
    # Keep frames without any segmented pixel, because some viewers misplace SEGs with missing frames.
    omit_empty_frames: bool = False
    nifti: bool = False
    stl: bool = False
    device: str = "cpu"
    overlap: float = 0.25
    batch_size: int = DEFAULT_WINDOW_BATCH
    selection_rules: Path = DEFAULT_SELECTION_RULES

    def __post_init__(self) -> None:
        self.segmentation_type = str(self.segmentation_type).upper()
        if self.segmentation_type not in SEGMENTATION_TYPES:
            raise ConfigurationError(
                f"segmentation type {self.segmentation_type!r} is invalid; use one of {', '.join(SEGMENTATION_TYPES)}"
            )
        if not 0.0 <= float(self.overlap) < 1.0:
            raise ConfigurationError(f"overlap {self.overlap} is invalid; give a fraction in [0, 1)")
        if int(self.batch_size) < 1:
            raise ConfigurationError(f"batch size {self.batch_size} is invalid; give a positive integer")
        self.tasks = [str(task) for task in (self.tasks or [])]
        self.selection_rules = Path(self.selection_rules)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python deploy_app",
        description="Segment the CT series of a DICOM folder with gCIS and write a DICOM SEG.",
    )
    sdk = parser.add_argument_group("MONAI Deploy options, passed on to the SDK")
    sdk.add_argument("-i", "--input", help="folder of DICOM files (default: $HOLOSCAN_INPUT_PATH, else ./input)")
    sdk.add_argument("-o", "--output", help="folder for the results (default: $HOLOSCAN_OUTPUT_PATH, else ./output)")
    sdk.add_argument(
        "-m", "--model",
        help="gCIS weights file, or a bundle or models folder that contains one "
        f"(default: $HOLOSCAN_MODEL_PATH, else ./models, else {REPOSITORY_WEIGHTS.relative_to(APP_DIR.parent)})",
    )
    sdk.add_argument("-w", "--workdir", help="SDK work folder (default: $HOLOSCAN_WORKDIR)")
    sdk.add_argument("-l", "--log-level", type=str.upper, choices=["DEBUG", "INFO", "WARN", "ERROR", "CRITICAL"],
                     help="logging level (default: INFO)")

    gcis = parser.add_argument_group("gCIS options (defaults from the 'gcis' section of app.yaml)")
    gcis.add_argument(
        "--tasks", nargs="+", metavar="TASK",
        help="structures to segment, by catalogue name or prompt (default: all tasks the weights were trained on)",
    )
    gcis.add_argument(
        "--seg-type", dest="segmentation_type", type=str.upper, choices=SEGMENTATION_TYPES,
        help="DICOM SEG type: one LABELMAP instance, or BINARY with one bit plane per segment (default: LABELMAP)",
    )
    gcis.add_argument(
        "--omit-empty-frames", action="store_const", const=True, default=None,
        help="leave frames without segmented pixels out of the SEG (default: keep every frame)",
    )
    gcis.add_argument(
        "--nifti", action="store_const", const=True, default=None,
        help="also write the label map as labels.nii.gz with the label table labels.json, as `gcis segment` does",
    )
    gcis.add_argument(
        "--stl", action="store_const", const=True, default=None,
        help="also write one STL surface mesh per structure found, in patient (LPS) millimetres",
    )
    gcis.add_argument("--device", help="torch device for inference, such as cpu or cuda:0 (default: cpu)")
    gcis.add_argument("--overlap", type=float, help="sliding-window overlap fraction (default: 0.25)")
    gcis.add_argument("--batch-size", type=int, help=f"windows per forward pass (default: {DEFAULT_WINDOW_BATCH})")
    gcis.add_argument(
        "--selection-rules", type=Path,
        help=f"series selection rules JSON (default: {DEFAULT_SELECTION_RULES.name} beside the app)",
    )
    return parser


SDK_OPTIONS = {"input": "--input", "output": "--output", "model": "--model", "workdir": "--workdir",
               "log_level": "--log-level"}


def parse_command_line(argv: list[str]) -> tuple[AppSettings, list[str]]:
    """Return the gCIS settings and the argument list for the SDK (argv[0] first, gCIS options removed)."""
    arguments = build_parser().parse_args(argv[1:])
    config = read_config_section(config_path())

    values = {}
    for setting in fields(AppSettings):
        value = getattr(arguments, setting.name, None)
        if value is not None:
            values[setting.name] = value
        elif setting.name in config:
            values[setting.name] = config[setting.name]
    unknown = sorted(set(config) - {setting.name for setting in fields(AppSettings)})
    if unknown:
        logger.warning("ignored unknown settings %s in the '%s' section of %s", unknown, CONFIG_SECTION, config_path())

    sdk_argv = [argv[0]]
    for name, flag in SDK_OPTIONS.items():
        value = getattr(arguments, name)
        if value is not None:
            sdk_argv.extend([flag, str(value)])
    return AppSettings(**values), sdk_argv


def config_path() -> Path:
    return Path(os.environ.get("HOLOSCAN_CONFIG_PATH") or DEFAULT_CONFIG)


def read_config_section(path: Path) -> dict:
    """Return the ``gcis`` section of an app config YAML, or {} when the file or section is absent."""
    if not path.is_file():
        return {}
    try:
        with open(path, encoding="utf-8") as stream:
            content = yaml.safe_load(stream) or {}
    except yaml.YAMLError as error:
        raise ConfigurationError(f"app config {path} is not valid YAML: {error}") from error
    if not isinstance(content, dict):
        raise ConfigurationError(f"app config {path} must be a YAML mapping")
    section = content.get(CONFIG_SECTION) or {}
    if not isinstance(section, dict):
        raise ConfigurationError(f"the '{CONFIG_SECTION}' section of {path} must be a mapping of setting names to values")
    return section


def resolve_weights(model_path: str | os.PathLike) -> Path:
    """Return the gCIS weights file that the SDK model path names.

    A file is taken as is. In a folder the search order is ``models/model.pt`` (a bundle
    folder), ``model.pt``, then the only ``*.pt`` file below it. When the path is the SDK
    default ``models`` and does not exist, the repository's shipped weights are used if present.
    """
    path = Path(model_path)
    tried = [str(path)]
    if path.is_file():
        return path
    if path.is_dir():
        for candidate in (path / "models" / "model.pt", path / "model.pt"):
            if candidate.is_file():
                return candidate
        found = sorted(path.rglob("*.pt"))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(str(p.relative_to(path)) for p in found[:5])
            raise WeightsNotFoundError(
                f"model folder {path} contains {len(found)} .pt files ({names}); pass the weights file itself with -m"
            )
    elif str(model_path) == SDK_DEFAULT_MODEL_PATH:
        tried.append(str(REPOSITORY_WEIGHTS))
        if REPOSITORY_WEIGHTS.is_file():
            return REPOSITORY_WEIGHTS
    raise WeightsNotFoundError(
        f"no gCIS weights found (looked at {', '.join(tried)}); pass the weights file or bundle folder with -m "
        "or set HOLOSCAN_MODEL_PATH"
    )


def weights_digest(path: Path, length: int = 16) -> str:
    """Return the first `length` hex digits of the file's SHA-256, which identifies the weights in the SEG."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]
