"""Measure the per-window cost of the gCIS network: encoder, one task, many tasks, and window batch 1 vs 2.

These are the figures that bound the whole-CT ratios of run_benchmarks.py. Example,
from the repository root::

    python benchmarks/window_costs.py --weights bundle/models/model.pt

It prints one JSON object. This is a measuring tool, not a test; pytest does not run it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = REPO_ROOT / "bundle" / "models" / "model.pt"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="gCIS weights (full checkpoint)")
    parser.add_argument("--tasks", type=int, default=12, help="number of trained tasks in the many-task case (default: 12)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per case; the median is reported (default: 3)")
    return parser.parse_args(argv)


def seconds_per_window(function, windows: torch.Tensor, repeats: int) -> float:
    """Return the median time of `function(windows)` divided by the number of windows, after one warm-up call."""
    with torch.inference_mode():
        function(windows)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            function(windows)
            times.append(time.perf_counter() - start)
    return round(sorted(times)[len(times) // 2] / windows.shape[0], 3)


def main(argv: list[str] | None = None) -> int:
    from gcis.checkpoint import load_checkpoint
    from gcis.network.config import NUM_AP_MODULES

    arguments = parse_arguments(argv)
    checkpoint, _ = load_checkpoint(arguments.weights)
    model = checkpoint.model.eval().to(memory_format=torch.channels_last_3d)
    trained = checkpoint.trained_tasks
    roi = model.config.roi_size

    def windows(count: int) -> torch.Tensor:
        return torch.rand(count, 1, *roi).contiguous(memory_format=torch.channels_last_3d)

    one_prompt = checkpoint.embeddings.get(trained[:1])
    many_prompts = checkpoint.embeddings.get(trained[: arguments.tasks])
    with torch.inference_mode():
        routes = model.route(checkpoint.embeddings.get(trained))
    distinct = [len({routes.prefix(t, k) for t in range(len(trained))}) for k in range(1, NUM_AP_MODULES + 1)]

    result = {
        "roi_size": list(roi),
        "threads": torch.get_num_threads(),
        "encoder_batch_2_s": seconds_per_window(model.encode, windows(2), arguments.repeats),
        "one_task_batch_1_s": seconds_per_window(lambda w: model(w, one_prompt), windows(1), arguments.repeats),
        "one_task_batch_2_s": seconds_per_window(lambda w: model(w, one_prompt), windows(2), arguments.repeats),
        f"{len(many_prompts)}_tasks_batch_2_s": seconds_per_window(lambda w: model(w, many_prompts), windows(2), arguments.repeats),
        "trained_tasks": len(trained),
        "distinct_route_prefixes_per_module": distinct,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
