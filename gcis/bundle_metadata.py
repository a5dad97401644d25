"""Build the bundle's configs/metadata.json from the task catalogue and the shipped checkpoint.

Label names come only from the catalogue, so the bundle, MONAI Label and the Deploy
app show the same names and ids.
"""

from __future__ import annotations

import json
from pathlib import Path

import monai
import numpy
import torch

import gcis
from gcis.catalogue import load_catalogue
from gcis.checkpoint import Checkpoint

SCHEMA_URL = "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json"


def build_metadata(checkpoint: Checkpoint, changelog: dict[str, str], training_summary: str = "") -> dict:
    """Return the metadata dictionary of a bundle that ships `checkpoint`."""
    catalogue = load_catalogue()
    trained = sorted((catalogue.get(name) for name in checkpoint.trained_tasks), key=lambda task: task.id)
    preprocessing = checkpoint.metadata.get("preprocessing", {})
    config = checkpoint.model.config
    channel_def = {"0": "background"}
    channel_def.update({str(task.id): task.name for task in trained})

    return {
        "schema": SCHEMA_URL,
        "version": gcis.__version__,
        "changelog": changelog,
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": numpy.__version__,
        "required_packages_version": {"gcis": gcis.__version__, "SimpleITK": _version("SimpleITK")},
        "supported_apps": {"monai-label": "0.8.5", "monai-deploy-app-sdk": "4.0.0"},
        "name": "gCIS general CT image segmentation",
        "task": "Text-prompted segmentation of CT structures and lesions",
        "description": (
            "One prompt-routed network (3D Swin encoder, 7 Automatic Pathway modules of "
            f"{config.sub_pathways} sub-pathways) that segments each catalogue task named by a text prompt. "
            + training_summary
        ).strip(),
        "authors": "gCIS contributors",
        "copyright": "Copyright (c) gCIS contributors",
        "data_source": "OpenKBP train-pats (head-and-neck organs at risk, clinical contours) and the TotalSegmentator example abdomen CT (tool-made labels)",
        "data_type": "nifti",
        "image_classes": "single-channel CT in Hounsfield units",
        "label_classes": "label map whose values are gCIS catalogue task ids; see channel_def",
        "pred_classes": (
            "label map whose values are gCIS catalogue task ids; see channel_def. "
            "Each one-piece structure (organ, gland, bone, muscle, larynx) keeps only its largest connected piece"
        ),
        "intended_use": "Research only. Not for clinical use.",
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "hounsfield",
                    "modality": "CT",
                    "num_channels": 1,
                    "spatial_shape": list(config.roi_size),
                    "dtype": "float32",
                    "value_range": [preprocessing.get("hu_min", -500.0), preprocessing.get("hu_max", 500.0)],
                    "is_patch_data": True,
                    "channel_def": {"0": "image"},
                    "spacing_mm": preprocessing.get("spacing", [4.0, 4.0, 2.5]),
                }
            },
            "outputs": {
                "pred": {
                    "type": "image",
                    "format": "labels",
                    "dtype": "uint16",
                    "value_range": [0, max(int(k) for k in channel_def)],
                    "num_channels": 1,
                    "spatial_shape": list(config.roi_size),
                    "is_patch_data": True,
                    "channel_def": channel_def,
                }
            },
        },
    }


def write_metadata(path: str | Path, metadata: dict) -> None:
    Path(path).write_text(json.dumps(metadata, indent=4) + "\n", encoding="utf-8")


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
