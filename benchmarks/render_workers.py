"""What a render worker saves: consecutive deployed runs, with and without one.

    .venv/bin/python benchmarks/render_workers.py [--runs 3]

Starts the served set-up of `make serve` (a real `prefect server` on 127.0.0.1, SQLite in a
temporary home, one process worker), then, for each mode, sends --runs render-campaign runs of
one new image each (one commune, one audience, one format, the demo model) one after another,
and times each from submission to completion. Without a render worker each run's process loads
the model; with one, the worker loads it once and keeps it. Counts the model loads from the
logs. Server start-up and registration are not counted.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from visuels.flows.processes import free_port, stop, wait_until_healthy
from visuels.flows.serve import (
    register,
    serving_environment,
    start_render_worker,
    start_server,
    start_worker,
    wait_for_render_workers,
)

COMMUNES = ["Sète", "Collioure", "Nîmes", "Toulouse", "Perpignan", "Carcassonne", "Narbonne", "Montpellier"]
MODEL_LOAD = "loading model demo"


def timed_runs(communes: list[str], out: Path) -> list[float]:
    from prefect.deployments import run_deployment

    seconds = []
    for commune in communes:
        started = time.perf_counter()
        run = run_deployment(
            "render-campaign/render-campaign",
            parameters={
                "campaign": "campaigns/ete-2027.yaml",
                "selection": {"communes": [commune], "audiences": ["residents"], "formats": ["story"]},
                "overrides": {"model": "demo"},
                "review": False,
                "run": {"output_dir": str(out)},
            },
            timeout=600,
            poll_interval=0.5,
        )
        assert run.state is not None and run.state.is_completed(), run.state
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if 2 * args.runs + 1 > len(COMMUNES):
        parser.error(f"--runs: at most {(len(COMMUNES) - 1) // 2}")

    from prefect.settings import PREFECT_API_URL, temporary_settings

    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    with tempfile.TemporaryDirectory() as scratch:
        home, out = Path(scratch) / "home", Path(scratch) / "outputs"
        home.mkdir()
        environment = serving_environment(
            api_url,
            {
                "PREFECT_HOME": str(home),
                "PREFECT_WORKER_QUERY_SECONDS": "1",
            },
        )
        worker_log, render_log = home / "worker.log", home / "render-worker.log"
        processes = [start_server(port, environment)]
        try:
            wait_until_healthy(api_url, processes[0])
            register(environment, pool_gpus=1)
            with worker_log.open("w") as output, temporary_settings({PREFECT_API_URL: api_url}):
                processes.append(start_worker("bench", environment, limit=1, output=output))
                timed_runs(COMMUNES[:1], out)  # warm-up: the demo model is built once, disk caches fill
                loads_before = worker_log.read_text(encoding="utf-8").count(MODEL_LOAD)
                in_process = timed_runs(COMMUNES[1 : 1 + args.runs], out)
                in_process_loads = worker_log.read_text(encoding="utf-8").count(MODEL_LOAD) - loads_before
                with render_log.open("w") as render_output:
                    processes.append(start_render_worker(environment, gpu=None, output=render_output))
                    wait_for_render_workers(api_url, processes[-1:])
                    on_worker = timed_runs(COMMUNES[1 + args.runs : 1 + 2 * args.runs], out)
                worker_loads = render_log.read_text(encoding="utf-8").count(MODEL_LOAD)
        finally:
            stop(processes)

    print(f"{platform.machine()}, prefect {version('prefect')}, torch {version('torch')}")
    for name, seconds, loads in (
        ("rendered in the run's process", in_process, in_process_loads),
        ("rendered by a render worker", on_worker, worker_loads),
    ):
        runs = ", ".join(f"{value:.2f}" for value in seconds)
        print(f"{name}: {len(seconds)} runs [{runs}] s, median {statistics.median(seconds):.2f} s, model loads {loads}")


if __name__ == "__main__":
    main()
