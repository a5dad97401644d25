"""Datalists in the gCIS form: each case is an image, a label map and the tasks its label values mean.

File format (JSON; relative paths are relative to the datalist file)::

    {"training": [{"image": "pt_1_ct.nii.gz", "label": "pt_1_oar_label.nii.gz",
                   "labels": {"1": "brainstem", "2": "spinal_cord"},
                   "annotated": ["brainstem"]}],
     "validation": [...]}

`labels` maps label values to catalogue task names. A binary mask may instead give
`"prompt": "liver"` (value 1), and a list of prompts means values 1..n in order.
`annotated` lists the tasks that were contoured in that case; others contribute no
loss (partial labels). When it is absent, every task with at least one voxel counts
as annotated, because a structure with no voxels was usually not contoured. An
optional `weight` (default 1) scales how often training draws the case.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from gcis.catalogue import TaskCatalogue, load_catalogue

logger = logging.getLogger(__name__)


@dataclass
class Case:
    """One training or validation case."""

    image: Path
    label: Path
    labels: dict[int, str]
    annotated: list[str] | None = None
    case_id: str = ""
    weight: float = 1.0


def load_datalist(path: str | os.PathLike, section: str = "training", catalogue: TaskCatalogue | None = None) -> list[Case]:
    """Read one section of a datalist and check every task name against the catalogue."""
    path = Path(path)
    catalogue = catalogue or load_catalogue()
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"datalist {path} not found") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"datalist {path} is not valid JSON: {error}") from error
    if section not in content:
        raise ValueError(f"datalist {path} has no section {section!r}; sections found: {sorted(content)}")

    cases = parse_cases(content[section], path.parent, f"datalist {path}, {section}", catalogue)
    logger.info("loaded %d %s cases from %s", len(cases), section, path)
    return cases


def parse_cases(items: list[dict], root: str | os.PathLike = ".", where: str = "datalist", catalogue: TaskCatalogue | None = None) -> list[Case]:
    """Turn datalist items (dicts) into cases; relative paths are taken from `root`."""
    catalogue = catalogue or load_catalogue()
    return [_parse_case(item, Path(root), f"{where}[{number}]", catalogue) for number, item in enumerate(items)]


def _parse_case(item: dict, root: Path, where: str, catalogue: TaskCatalogue) -> Case:
    for key in ("image", "label"):
        if key not in item:
            raise ValueError(f"{where} has no {key!r} entry")
    if "labels" in item:
        labels = {int(value): name for value, name in item["labels"].items()}
    elif "prompt" in item:
        prompts = item["prompt"] if isinstance(item["prompt"], list) else [item["prompt"]]
        labels = {i + 1: name for i, name in enumerate(prompts)}
    else:
        raise ValueError(f"{where} needs 'labels' (value to task name) or 'prompt'")

    resolved = resolve_label_names(labels, catalogue, where)

    annotated = item.get("annotated")
    if annotated is not None:
        annotated = [catalogue.find_exact(name).name for name in annotated]
    image = Path(item["image"]) if Path(item["image"]).is_absolute() else root / item["image"]
    label = Path(item["label"]) if Path(item["label"]).is_absolute() else root / item["label"]
    weight = float(item.get("weight", 1.0))
    if weight <= 0:
        raise ValueError(f"{where}: weight {weight} is invalid; use a positive sampling weight")
    return Case(image, label, resolved, annotated, item.get("case_id", image.name), weight)


def build_datalist(
    image_dir: str | os.PathLike,
    label_dir: str | os.PathLike,
    label_names: dict[int, str],
    image_glob: str = "*_ct.nii.gz",
    label_glob: str = "*_label.nii.gz",
    catalogue: TaskCatalogue | None = None,
) -> list[dict]:
    """Pair images with label maps by case id and list, per case, the tasks with voxels.

    The case id is the part of the file name that the glob's '*' matched, so
    'pt_1_ct.nii.gz' and 'pt_1_oar_label.nii.gz' pair with the globs '*_ct.nii.gz'
    and '*_oar_label.nii.gz'.
    """
    catalogue = catalogue or load_catalogue()
    names = resolve_label_names(label_names, catalogue, "label names")

    images = {_case_id(p.name, image_glob): p for p in sorted(Path(image_dir).iterdir()) if fnmatch.fnmatch(p.name, image_glob)}
    labels = {_case_id(p.name, label_glob): p for p in sorted(Path(label_dir).iterdir()) if fnmatch.fnmatch(p.name, label_glob)}
    missing = sorted(set(images) - set(labels))
    if missing:
        logger.warning("%d images have no label map and are skipped: %s", len(missing), ", ".join(missing[:10]))

    items = []
    for case_id in sorted(set(images) & set(labels)):
        values = np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(labels[case_id]))))
        annotated = [names[int(v)] for v in values if int(v) in names]
        items.append(
            {
                "case_id": case_id,
                "image": str(images[case_id].resolve()),
                "label": str(labels[case_id].resolve()),
                "labels": {str(v): n for v, n in names.items()},
                "annotated": annotated,
            }
        )
    logger.info("paired %d cases from %s and %s", len(items), image_dir, label_dir)
    return items


def resolve_label_names(labels: dict, catalogue: TaskCatalogue, where: str) -> dict[int, str]:
    """Map label values to canonical task names; an unknown name raises with the closest tasks."""
    resolved = {}
    for value, name in labels.items():
        task = catalogue.find_exact(name)
        if task is None:
            close = ", ".join(t.name for t in catalogue.closest(name))
            raise ValueError(f"{where}: task {name!r} (label value {value}) is not in the catalogue; closest: {close}")
        resolved[int(value)] = task.name
    return resolved


def _case_id(filename: str, glob: str) -> str:
    prefix, _, suffix = glob.partition("*")
    return filename[len(prefix) : len(filename) - len(suffix) if suffix else None]
