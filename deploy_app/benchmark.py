"""Measure the gCIS Deploy app end to end on a DICOM series: wall time, peak memory and stage timings.

Each run starts the app as a user does (``python deploy_app ...``) in a child process and
reads the child's peak resident memory from the kernel (``os.wait4``). The stage timings
come from the app's log. Example, from the repository root::

    python deploy_app/benchmark.py -m bundle/models/model.pt --repeats 3 --json benchmark.json

This is a measuring tool, not a test; it is not run by pytest.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

from gcis.benchmarking import machine_description, run_measured

APP_DIR = Path(__file__).resolve().parent
REPO_ROOT = APP_DIR.parent
DEFAULT_SERIES = REPO_ROOT.parent / "shared" / "data" / "totalsegmentator" / "example_ct_dicom"
# The segmenter logs "preprocess_s 0.0, inference_s 19.9, postprocess_s 0.4".
STAGE_PATTERN = re.compile(r"\b(preprocess_s|inference_s|postprocess_s) ([0-9.]+)")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-i", "--input", type=Path, default=DEFAULT_SERIES, help="DICOM series folder")
    parser.add_argument("-m", "--model", type=Path, help="gCIS weights file or bundle folder (default: the app's)")
    parser.add_argument("--tasks", nargs="+", help="tasks to segment (default: all trained tasks)")
    parser.add_argument("--repeats", type=int, default=1, help="number of app runs (default: 1)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("app_options", nargs=argparse.REMAINDER, help="further app options after --")
    return parser.parse_args(argv)


def run_once(arguments: argparse.Namespace, output: Path) -> dict:
    """Run the app once; return its exit status, wall time (s), peak RSS (MiB) and stage timings (s)."""
    command = [sys.executable, str(APP_DIR), "-i", str(arguments.input), "-o", str(output)]
    if arguments.model:
        command += ["-m", str(arguments.model)]
    if arguments.tasks:
        command += ["--tasks", *arguments.tasks]
    command += [option for option in arguments.app_options if option != "--"]

    run = run_measured(command, cwd=REPO_ROOT)
    stages = {name: float(value) for name, value in STAGE_PATTERN.findall(run.output)}
    return {
        "exit_status": run.exit_status,
        "wall_s": run.wall_s,
        "peak_rss_mib": run.peak_rss_mib,
        **stages,
        "log_tail": run.output[-2000:] if run.exit_status else "",
    }


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    runs = []
    for repeat in range(arguments.repeats):
        with tempfile.TemporaryDirectory(prefix="gcis-benchmark-") as output:
            result = run_once(arguments, Path(output))
        runs.append(result)
        print(f"run {repeat + 1}: exit {result['exit_status']}, {result['wall_s']:.1f} s, "
              f"peak RSS {result['peak_rss_mib']:.0f} MiB, inference {result.get('inference_s', float('nan')):.1f} s")
        if result["exit_status"] != 0:
            print(result["log_tail"], file=sys.stderr)
            return 1

    summary = {
        "input": str(arguments.input),
        "model": str(arguments.model) if arguments.model else "app default",
        "tasks": arguments.tasks or "all trained tasks",
        "repeats": arguments.repeats,
        "median_wall_s": round(statistics.median(r["wall_s"] for r in runs), 2),
        "max_peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "runs": [{key: value for key, value in r.items() if key != "log_tail"} for r in runs],
        "machine": machine_description(("torch", "monai-deploy-app-sdk")),
    }
    print(json.dumps({key: summary[key] for key in ("median_wall_s", "max_peak_rss_mib")}))
    if arguments.json:
        arguments.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
