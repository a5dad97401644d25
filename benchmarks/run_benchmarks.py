"""Measure wall time and peak memory of whole-CT segmentation in the five modes of segmentation_modes.py.

Every measurement runs in its own child process, so that its peak resident memory
(from the kernel) belongs to that mode alone. The inputs are one CT on two model
grids: the weights' own spacing and 1.5 mm isotropic. Example, from the repository root::

    python benchmarks/run_benchmarks.py --weights bundle/models/model.pt --json docs/benchmarks_cpu.json

It prints a Markdown table of the results and the ratios between modes. This is a
measuring tool, not a test; pytest does not run it.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.segmentation_modes import MODES  # noqa: E402
from gcis.benchmarking import machine_description, run_measured  # noqa: E402
from gcis.inference.sliding_window import DEFAULT_WINDOW_BATCH  # noqa: E402

logger = logging.getLogger("gcis.benchmarks")

DEFAULT_CT = REPO_ROOT.parent / "shared" / "data" / "totalsegmentator" / "example_ct.nii.gz"
DEFAULT_WEIGHTS = REPO_ROOT / "bundle" / "models" / "model.pt"
RESULT_PREFIX = "BENCHMARK-RESULT "
LARGE_SPACING_MM = 1.5


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ct", type=Path, default=DEFAULT_CT, help="CT volume in HU (NIfTI, NRRD or MHA)")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="gCIS weights (full checkpoint)")
    parser.add_argument("--task", default="liver", help="task of the one-task and pruned modes (default: liver)")
    parser.add_argument("--sequential-tasks", type=int, default=12,
                        help="number of tasks in the one-prompt-at-a-time comparison (default: 12)")
    parser.add_argument("--overlap", type=float, default=0.25, help="sliding-window overlap (default: 0.25)")
    parser.add_argument("--window-batch", type=int, default=DEFAULT_WINDOW_BATCH,
                        help=f"windows per network call (default: {DEFAULT_WINDOW_BATCH})")
    parser.add_argument("--repeats", type=int, default=1,
                        help="segmentations per measurement; the median time is reported (default: 1)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--grids", nargs="+", default=["default", "1.5mm"], choices=["default", "1.5mm"],
                        help="model grids to measure on (default: both)")
    parser.add_argument("--skip", nargs="*", default=[], help="measurements to leave out, as GRID:NAME")
    parser.add_argument("--json", type=Path, help="write all results to this JSON file")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--volume", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tasks", nargs="*", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# Child side: one measurement.

def current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_child(arguments: argparse.Namespace) -> int:
    """Load the weights and the volume, run one mode once, print its timing as one JSON line."""
    import torch

    from benchmarks import segmentation_modes as modes
    from gcis.checkpoint import load_checkpoint

    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    volume = np.load(arguments.volume)
    # NOTE: the modes run on the CPU only; a GPU run needs the model and the windows moved to the device.
    checkpoint, _ = load_checkpoint(arguments.weights, "cpu")
    tasks = arguments.tasks
    start = time.perf_counter()
    segment = modes.prepare(arguments.child, checkpoint, tasks, arguments.overlap, arguments.window_batch)
    setup_seconds = time.perf_counter() - start
    rss_before = current_rss_mib()

    times = []
    for _ in range(arguments.repeats):
        start = time.perf_counter()
        labels = segment(volume)
        times.append(time.perf_counter() - start)
    seconds = float(np.median(times))

    result = {
        "seconds": round(seconds, 2),
        "setup_seconds": round(setup_seconds, 2),
        "all_seconds": [round(t, 2) for t in times],
        "rss_before_mib": round(rss_before, 1),
        "labels_found": int(len(np.unique(labels)) - 1),
        "threads": torch.get_num_threads(),
    }
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


# Parent side: inputs, measurements and the report.

def model_grid_volumes(arguments: argparse.Namespace, folder: Path) -> dict[str, dict]:
    """Write the CT on each requested model grid as a normalised .npy file; return path, spacing and shape."""
    from gcis.checkpoint import read_payload
    from gcis.data.geometry import Preprocessing, read_volume, to_model_grid

    metadata = read_payload(arguments.weights, None).get("metadata", {})
    preprocessing = Preprocessing.from_dict(metadata.get("preprocessing", Preprocessing().to_dict()))
    image = read_volume(arguments.ct)

    grids = {}
    for grid in arguments.grids:
        spacing = preprocessing.spacing if grid == "default" else (LARGE_SPACING_MM,) * 3
        setting = Preprocessing(spacing=tuple(spacing), hu_min=preprocessing.hu_min, hu_max=preprocessing.hu_max)
        volume, _ = to_model_grid(image, setting)
        path = folder / f"{grid}.npy"
        np.save(path, volume.astype(np.float32))
        grids[grid] = {"path": path, "spacing_mm": list(spacing), "shape": list(volume.shape)}
        logger.info("model grid %s: spacing %s mm, shape %s", grid, spacing, volume.shape)
    return grids


def planned_measurements(trained: list[str], arguments: argparse.Namespace) -> list[tuple[str, str, list[str]]]:
    """Return (name, mode, tasks) of each measurement on one grid."""
    subset = trained[: arguments.sequential_tasks]
    return [
        ("a_one_task", "one_task", [arguments.task]),
        ("b_all_tasks", "all_tasks", trained),
        ("b_subset", "all_tasks", subset),
        ("c_one_prompt_at_a_time", "one_prompt_at_a_time", subset),
        ("d_pruned", "pruned", [arguments.task]),
        ("e_vista3d", "vista3d", trained),
    ]


def measure(arguments: argparse.Namespace, mode: str, volume: Path, tasks: list[str]) -> dict:
    command = [
        sys.executable, str(Path(__file__).resolve()), "--child", mode, "--volume", str(volume),
        "--weights", str(arguments.weights), "--overlap", str(arguments.overlap),
        "--window-batch", str(arguments.window_batch), "--repeats", str(arguments.repeats), "--tasks", *tasks,
    ]
    if arguments.threads:
        command += ["--threads", str(arguments.threads)]
    run = run_measured(command, cwd=REPO_ROOT)
    lines = [line for line in run.output.splitlines() if line.startswith(RESULT_PREFIX)]
    if run.exit_status != 0 or not lines:
        raise RuntimeError(f"benchmark mode {mode} failed with exit status {run.exit_status}:\n{run.output[-3000:]}")
    result = json.loads(lines[-1][len(RESULT_PREFIX):])
    result.update({"peak_rss_mib": run.peak_rss_mib, "process_wall_s": run.wall_s, "tasks": len(tasks)})
    return result


def ratio(results: dict, numerator: str, denominator: str) -> float | None:
    if numerator in results and denominator in results:
        return round(results[numerator]["seconds"] / results[denominator]["seconds"], 3)
    return None


def markdown_report(report: dict) -> str:
    lines = []
    for grid, entry in report["grids"].items():
        lines += [
            f"### Model grid {grid}: spacing {entry['spacing_mm']} mm, shape {entry['shape']} (z, y, x)",
            "",
            "| measurement | tasks | segmentation (s) | set-up (s) | peak RSS (MiB) | RSS before segmentation (MiB) |",
            "|---|---|---|---|---|---|",
        ]
        for name, result in entry["results"].items():
            lines.append(
                f"| {name} | {result['tasks']} | {result['seconds']:.1f} | {result['setup_seconds']:.1f} | "
                f"{result['peak_rss_mib']:.0f} | "
                f"{result['rss_before_mib']:.0f} |"
            )
        lines += ["", "| ratio | value |", "|---|---|"]
        for label, value in entry["ratios"].items():
            lines.append(f"| {label} | {value if value is not None else 'not measured'} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.child:
        return run_child(arguments)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from gcis.checkpoint import read_payload

    trained = list(read_payload(arguments.weights, None)["trained_tasks"])
    if arguments.task not in trained:
        raise SystemExit(f"task {arguments.task!r} is not among the weights' trained tasks; choose one of {trained}")
    report = {"command": " ".join(sys.argv), "machine": machine_description(), "grids": {}}

    with tempfile.TemporaryDirectory(prefix="gcis-benchmark-") as folder:
        grids = model_grid_volumes(arguments, Path(folder))
        for grid, entry in grids.items():
            results = {}
            for name, mode, tasks in planned_measurements(trained, arguments):
                if f"{grid}:{name}" in arguments.skip:
                    continue
                logger.info("measuring %s on the %s grid with %d tasks", name, grid, len(tasks))
                results[name] = measure(arguments, mode, entry["path"], tasks)
                logger.info("%s: %s", name, results[name])
            report["grids"][grid] = {
                "spacing_mm": entry["spacing_mm"],
                "shape": entry["shape"],
                "results": results,
                "ratios": {
                    "(b)/(a) all tasks / one task": ratio(results, "b_all_tasks", "a_one_task"),
                    f"(b)/(c) {arguments.sequential_tasks} tasks, together / one prompt at a time":
                        ratio(results, "b_subset", "c_one_prompt_at_a_time"),
                    "(d)/(a) pruned / one task": ratio(results, "d_pruned", "a_one_task"),
                    "(b)/(e) all tasks / VISTA3D": ratio(results, "b_all_tasks", "e_vista3d"),
                },
            }

    print(markdown_report(report))
    if arguments.json:
        arguments.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
