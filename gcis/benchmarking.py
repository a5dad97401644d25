"""Measure a command in a child process: exit status, wall time, peak resident memory and output.

Peak memory is the child's maximum resident set size as the kernel reports it
(``os.wait4``), so one measurement needs one child process. The benchmark scripts
of the Deploy app and of ``benchmarks/`` use this; they are measuring tools, not tests.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

STACK_LIMIT_BYTES = 32 * 1024 * 1024  # Holoscan, which MONAI imports, warns about a smaller stack


@dataclass
class ChildRun:
    """Result of one measured child process; times in seconds, memory in MiB."""

    exit_status: int
    wall_s: float
    peak_rss_mib: float
    output: str


def raise_stack_limit() -> None:
    """Set this process's stack limit to 32 MiB (within the hard limit); use as a child's preexec_fn."""
    _, hard = resource.getrlimit(resource.RLIMIT_STACK)
    limit = STACK_LIMIT_BYTES if hard == resource.RLIM_INFINITY else min(STACK_LIMIT_BYTES, hard)
    resource.setrlimit(resource.RLIMIT_STACK, (limit, hard))


def run_measured(command: list[str], cwd: str | Path | None = None, env: dict | None = None) -> ChildRun:
    """Run `command` to completion; return its exit status, wall time, peak RSS and combined output."""
    with tempfile.TemporaryFile("w+") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
            preexec_fn=raise_stack_limit,
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall_s = time.perf_counter() - started
        log.seek(0)
        output = log.read()

    # ru_maxrss is in KiB on Linux.
    return ChildRun(os.waitstatus_to_exitcode(status), round(wall_s, 2), round(usage.ru_maxrss / 1024, 1), output)


def machine_description(packages: tuple[str, ...] = ("torch", "monai")) -> dict:
    """Return the processor, CPU count, memory, Python and package versions of this machine."""
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    description = {
        "processor": _cpu_model() or platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gib": round(memory_gib, 1),
        "python": platform.python_version(),
    }
    for package in packages:
        try:
            description[package] = version(package)
        except PackageNotFoundError:
            description[package] = "not installed"
    return description


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None
