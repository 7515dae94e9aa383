"""Time `visuels demo` end to end on this machine.

    .venv/bin/python benchmarks/demo.py [--runs 2]

The console script in a subprocess, each run into a fresh output folder (so every image is
rendered), Prefect's temporary server included. The CPU stage's steps are timed by
benchmarks/cpu_stage.py.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path


def end_to_end(runs: int) -> list[float]:
    script = Path(sys.executable).parent / "visuels"
    seconds = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as out_dir:
            started = time.perf_counter()
            subprocess.run([str(script), "demo", "--output-dir", out_dir], check=True, capture_output=True)
            seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    import torch

    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, python {platform.python_version()}")
    print(f"torch {torch.__version__}, diffusers {version('diffusers')}, prefect {version('prefect')}")
    runs = end_to_end(args.runs)
    print(f"visuels demo, end to end: {', '.join(f'{s:.1f}' for s in runs)} s (median {statistics.median(runs):.1f} s)")


if __name__ == "__main__":
    main()
