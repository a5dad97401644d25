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
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
REPO_ROOT = APP_DIR.parent
DEFAULT_SERIES = REPO_ROOT.parent / "shared" / "data" / "totalsegmentator" / "example_ct_dicom"
STACK_LIMIT_BYTES = 32 * 1024 * 1024  # Holoscan warns about a smaller stack
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


def limit_child_process() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_STACK)
    limit = STACK_LIMIT_BYTES if hard == resource.RLIM_INFINITY else min(STACK_LIMIT_BYTES, hard)
    resource.setrlimit(resource.RLIMIT_STACK, (limit, hard))


def run_once(arguments: argparse.Namespace, output: Path) -> dict:
    """Run the app once; return its exit status, wall time (s), peak RSS (MiB) and stage timings (s)."""
    command = [sys.executable, str(APP_DIR), "-i", str(arguments.input), "-o", str(output)]
    if arguments.model:
        command += ["-m", str(arguments.model)]
    if arguments.tasks:
        command += ["--tasks", *arguments.tasks]
    command += [option for option in arguments.app_options if option != "--"]

    with tempfile.TemporaryFile("w+") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
                                   preexec_fn=limit_child_process)
        _, status, usage = os.wait4(process.pid, 0)
        wall_s = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        text = log.read()

    stages = {name: float(value) for name, value in STAGE_PATTERN.findall(text)}
    return {
        "exit_status": process.returncode,
        "wall_s": round(wall_s, 2),
        # ru_maxrss is in KiB on Linux.
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        **stages,
        "log_tail": text[-2000:] if process.returncode else "",
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
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": version("torch"),
            "monai-deploy-app-sdk": version("monai-deploy-app-sdk"),
        },
    }
    print(json.dumps({key: summary[key] for key in ("median_wall_s", "max_peak_rss_mib")}))
    if arguments.json:
        arguments.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
