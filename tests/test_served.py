"""The deployed set-up end to end: a real `prefect server`, the process pool, its workers as
`make serve` starts them on a machine without GPU (one each for the default, shards and reviews
queues).

A sharded render of the sample campaign (2 communes, one job each, shard size 1) runs as a
parent run on the default queue and two sub-runs on the shards queue; their batches go to the
render worker, which loads the model once for both runs. The server lets each run start once.
Every job is rendered exactly once, every output verifies, and the review run the parent
started waits suspended (no process, no slot), then publishes the files once answered.
"""

import os
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from flows.serve import (
    free_port,
    register,
    serving_environment,
    start_flow_workers,
    start_render_worker,
    start_server,
    wait_for_render_workers,
    wait_until_healthy,
)
from pipelines import manifest
from pipelines.charter import load_charter
from pipelines.database import Database, database_url, ledger_table
from pipelines.marking.keys import signing_files
from pipelines.marking.verify import verify_file
from tests.conftest import SAMPLE_CHARTER_DIR

pytestmark = pytest.mark.integration

COMMUNES = ["Sète", "Collioure"]
WORKERS = ["default-0", "shards-0", "reviews-0"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """API URL, output folder and log folder (one file per worker) of a served set-up, stopped afterwards."""
    home = tmp_path_factory.mktemp("prefect-home")
    out = tmp_path_factory.mktemp("served") / "outputs"
    logs = tmp_path_factory.mktemp("worker-logs")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    environment = serving_environment(
        api_url,
        {
            "PREFECT_HOME": str(home),
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        },
    )
    processes = [start_server(port, environment)]
    try:
        with ExitStack() as files:
            wait_until_healthy(api_url, processes[0])
            register(environment, pool_gpus=1)
            render_output = files.enter_context((logs / "render-worker.log").open("w"))
            processes.append(start_render_worker(environment, gpu=None, output=render_output))
            # As `make serve` starts them on a machine without GPU: one worker per queue.
            processes += start_flow_workers(environment, workers=1, gpus=0, logs=logs)
            wait_for_render_workers(api_url, processes[1:2])
            yield api_url, out, logs
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait(timeout=60)


def test_a_sharded_campaign_renders_each_job_once_on_two_workers(served: tuple[str, Path, Path]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.deployments import run_deployment
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    api_url, out, logs = served
    parameters = {
        "campaign": "campaigns/ete-2027.yaml",
        "selection": {"communes": COMMUNES, "audiences": ["residents"], "formats": ["instagram_square"]},
        "overrides": {"model": "demo", "steps": 2},
        "review": True,
        "run": {"output_dir": str(out), "shard_size": 1},
    }
    with temporary_settings({PREFECT_API_URL: api_url}):
        with get_client(sync_client=True) as client:  # two slots per GPU of the pool (--pool-gpus 1)
            assert client.read_global_concurrency_limit_by_name("gpu").limit == 2
        parent = run_deployment("render-campaign/render-campaign", parameters=parameters, timeout=420, poll_interval=2)
        assert parent.state is not None and parent.state.is_completed(), parent.state
        with get_client(sync_client=True) as client:
            renders = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["render-campaign"])))
            shards = [run for run in renders if run.id != parent.id]
            assert len(shards) == 2 and all(run.state and run.state.is_completed() for run in shards)

            # The parent started the review; it waits (Paused) until a designer answers.
            deadline, review = time.monotonic() + 180, None
            while time.monotonic() < deadline:
                reviews = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["review-campaign"])))
                if reviews and reviews[0].state and reviews[0].state.is_paused():
                    review = reviews[0]
                    break
                time.sleep(1)
            assert review is not None, "no paused review run"
            assert review.state.name == "Suspended"  # its process ended: no worker slot waits with it
            # The render run links to the studio's page for this review.
            from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

            [link] = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["studio-review-ete-2027-vivre-en-solane"])),
                limit=1,
                offset=0,
            )
            assert f"/review/{review.id}" in str(link.data)
            resume_flow_run(review.id, run_input={"reviewer": "test"})
            while time.monotonic() < deadline:
                state = client.read_flow_run(review.id).state
                if state and state.is_final():
                    break
                time.sleep(1)
            assert state is not None and state.is_completed(), state

    from sqlalchemy import func, select

    database = Database(database_url(out))
    recorded = manifest.entries(database, "ete-2027-vivre-en-solane")
    assert len(recorded) == len(COMMUNES)
    with database.reading() as connection:
        exports = connection.execute(
            select(ledger_table.c.job_key, func.count())
            .where(ledger_table.c.parent_id.is_(None))
            .group_by(ledger_table.c.job_key)
        )
        assert dict(exports.all()) == {key: 1 for key in recorded}  # each job rendered exactly once
    charter = load_charter(SAMPLE_CHARTER_DIR)
    for entry in recorded.values():
        report = verify_file(out / entry["file"], charter, database, signing_files().trust_anchors)
        assert report.ok, report
        assert (out / "ete-2027-vivre-en-solane" / "approved" / entry["file"].split("/", 1)[1]).is_file()
    database.close()
    # Both sub-runs' chunks went to the render worker, which loaded the model once for both.
    render_output = (logs / "render-worker.log").read_text(encoding="utf-8")
    assert render_output.count("loading model demo") == 1, render_output
    for commune in COMMUNES:
        assert f"rendered 1 image(s): {commune} instagram_square" in render_output
    # The workers raced for the flow runs (parent, 2 shards, review); the server let each start once,
    # and the review once more when its answer came.
    started = "Flow run '(.+)' submitted to infrastructure"
    started_runs = [name for worker in WORKERS for name in re.findall(started, (logs / f"{worker}.log").read_text())]
    assert sorted(started_runs) == sorted(run.name for run in [*renders, review, review])
    assert os.environ.get("PREFECT_API_URL") is None  # the test did not leak its server into others
