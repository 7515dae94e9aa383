"""Time `visuels demo` end to end, and its stages in-process, on this machine.

    .venv/bin/python benchmarks/demo.py [--runs 2]

End to end: the console script in a subprocess, each run into a fresh output folder (so
every image is rendered), Prefect's temporary server included. Stages: the same functions the
flow runs (generate, post-process, export), timed per format without Prefect.
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

REPO = Path(__file__).resolve().parents[1]


def end_to_end(runs: int) -> list[float]:
    script = Path(sys.executable).parent / "visuels"
    seconds = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as out_dir:
            started = time.perf_counter()
            subprocess.run([str(script), "demo", "--output-dir", out_dir], check=True, capture_output=True)
            seconds.append(time.perf_counter() - started)
    return seconds


def stages() -> dict[str, dict[str, float]]:
    from pipelines.charter import load_charter
    from pipelines.cli import DEMO_COMMUNES, SAMPLE_CAMPAIGN
    from pipelines.devices import choose_device, choose_dtype
    from pipelines.export import export_png
    from pipelines.generation import generate
    from pipelines.jobs import batches
    from pipelines.model_loading import load_pipeline
    from pipelines.postprocess.chain import postprocess
    from pipelines.render import plan_render
    from pipelines.render_request import Overrides, Selection
    from pipelines.third_party_logs import quiet_third_party_logs

    quiet_third_party_logs()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as out_dir:
        root = Path(out_dir)
        plan = plan_render(SAMPLE_CAMPAIGN, root, Selection(communes=DEMO_COMMUNES), Overrides(model="demo"))
        charter = load_charter(plan.setup.charter_path)
        device = choose_device()
        started = time.perf_counter()
        pipeline = load_pipeline(plan.setup.model, device, choose_dtype(device))
        results["load model"] = {"seconds": time.perf_counter() - started}
        for batch in batches(plan.pending, 4):
            row = results.setdefault(batch[0].format, {"images": 0, "generate": 0.0, "postprocess": 0.0, "export": 0.0})
            started = time.perf_counter()
            pictures = generate(pipeline, batch)
            row["generate"] += time.perf_counter() - started
            for job, picture in zip(batch, pictures, strict=True):
                started = time.perf_counter()
                result = postprocess(picture, charter, job.width, job.height, job.language)
                row["postprocess"] += time.perf_counter() - started
                started = time.perf_counter()
                export_png(result.image, job, root, result.logo.corner, result.logo.variant)
                row["export"] += time.perf_counter() - started
                row["images"] += 1
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    import torch

    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, python {platform.python_version()}")
    print(f"torch {torch.__version__}, diffusers {version('diffusers')}, prefect {version('prefect')}")
    runs = end_to_end(args.runs)
    print(f"visuels demo, end to end: {', '.join(f'{s:.1f}' for s in runs)} s (median {statistics.median(runs):.1f} s)")
    print("\nper stage (ms per image, batches of 4):")
    print(f"{'format':<18}{'images':>7}{'generate':>10}{'postproc':>10}{'export':>9}")
    for name, row in stages().items():
        if name == "load model":
            print(f"{'load model':<18}{'':>7}{row['seconds'] * 1000:>10.0f}")
            continue
        count = row["images"]
        print(
            f"{name:<18}{count:>7}{row['generate'] / count * 1000:>10.0f}"
            f"{row['postprocess'] / count * 1000:>10.0f}{row['export'] / count * 1000:>9.0f}"
        )


if __name__ == "__main__":
    main()
