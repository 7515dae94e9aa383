"""Prefect's share of a render run: flow wall time vs time inside the pipeline functions.

    .venv/bin/python benchmarks/orchestration.py [--communes 3]

Runs the real render-campaign flow on the demo model (sample campaign, 1 audience, 4 formats)
against a temporary Prefect server (its start-up is not counted), timing ``plan_render``,
``render_jobs`` (each chunk task's work; two may overlap) and ``finish_render`` from inside; the
rest of the flow's wall time is Prefect (task and state bookkeeping, artifacts, API calls).
Reported per rendered image and per chunk task.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(function: Callable, spans: list[tuple[float, float]]) -> Callable:
    @functools.wraps(function)
    def wrapper(*args: object, **kwargs: object) -> object:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spans.append((started, time.perf_counter()))

    return wrapper


def covered(spans: list[tuple[float, float]]) -> float:
    """Seconds during which at least one span ran (chunk tasks overlap)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--communes", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=0, help="0: automatic; chunks hold 8 batches")
    args = parser.parse_args()

    import visuels.flows.render_batches as chunk_module
    import visuels.flows.render_campaign as flow_module
    from prefect.testing.utilities import prefect_test_harness
    from visuels._internal.logs import quiet_third_party_logs
    from visuels.marking.keys import init_local_chain

    quiet_third_party_logs()
    spans: list[tuple[float, float]] = []
    chunks: list[tuple[float, float]] = []
    for name in ("plan_render", "finish_render"):
        setattr(flow_module, name, timed(getattr(flow_module, name), spans))
    chunk_module.render_jobs = timed(timed(chunk_module.render_jobs, spans), chunks)
    selection = {"max_communes": args.communes, "audiences": ["residents"]}
    with tempfile.TemporaryDirectory() as scratch, prefect_test_harness(server_startup_timeout=120):
        os.environ.setdefault("VISUELS_KEYS_DIR", str(Path(scratch) / "keys"))
        init_local_chain(Path(os.environ["VISUELS_KEYS_DIR"]))
        flow_module.render_campaign(  # warm-up: model build and load, imports
            campaign=str(REPO / "campaigns/ete-2027.yaml"),
            selection={"communes": ["Narbonne"], "audiences": ["residents"], "formats": ["story"]},
            overrides={"model": "demo"},
            run={"output_dir": str(Path(scratch) / "warm")},
        )
        spans.clear()
        chunks.clear()
        started = time.perf_counter()
        summary = flow_module.render_campaign(
            campaign=str(REPO / "campaigns/ete-2027.yaml"),
            selection=selection,
            overrides={"model": "demo"},
            run={"output_dir": str(Path(scratch) / "out"), "batch_size": args.batch_size},
        )
        total = time.perf_counter() - started
    inside = covered(spans)
    prefect = total - inside
    print(f"{platform.machine()}, prefect {version('prefect')}, torch {version('torch')}")
    print(
        f"{summary.rendered} images in {len(chunks)} chunk task(s): flow {total:.2f} s, pipeline functions"
        f" {inside:.2f} s, Prefect {prefect:.2f} s = {prefect / total:.1%} of the run,"
        f" {prefect / summary.rendered * 1000:.0f} ms per image, {prefect / len(chunks) * 1000:.0f} ms per chunk"
    )


if __name__ == "__main__":
    main()
