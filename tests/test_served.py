"""Two machines, one record, as the README's Scale-out recipe sets them up, for real.

A PostgreSQL server holds both the Prefect server's database and the database of record.
Machines "a" and "b" have working folders and ``PREFECT_HOME``s of their own and share only the
database, the Prefect API and a "shared mount" (the outputs and Prefect's result storage). Each
runs what `make serve` starts on a machine without GPU: a process worker per queue (default,
shards, reviews) and a render worker; "a" also runs the server.

1. Two overlapping runs of one campaign start at once: every job is rendered exactly once, by
   one render worker or the other, and each run asks for a review, which waits suspended.
2. The worst case for `make serve`'s worker limits: "b"'s process workers stop, so "a"'s serve
   the queues alone; the nightly starts two campaigns' runs (one more than the default queue's
   slots), one of them sharded, while the two reviews wait. It completes.
3. A review answered starts again and publishes its files.

Then the record: one export row per file, the chain valid, every file verifying, no claim left.
Last, a render worker killed with SIGKILL mid-chunk fails the run that sent the chunk.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from sqlalchemy import create_engine
from visuels.flows.processes import free_port, stop, wait_until_healthy
from visuels.flows.serve import (
    REPO,
    register,
    serving_environment,
    start_flow_workers,
    start_render_worker,
    start_server,
    wait_for_render_workers,
)
from visuels.marking.keys import keys_dir
from visuels.planning.plan import plan_render
from visuels.planning.request import Overrides, Selection
from visuels.record import manifest
from visuels.record.database import Database
from visuels.record.review_batches import pictures_of_review

from tests.postgres import new_database
from tests.test_faults import assert_record_matches_files

if TYPE_CHECKING:  # Prefect's client is imported in the test, once the module's fixture has a server
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import FlowRun

pytestmark = pytest.mark.integration

FIRST_RUN = ["Sète", "Collioure", "Narbonne", "Gruissan", "Leucate"]
SECOND_RUN = ["Collioure", "Narbonne", "Carcassonne", "Limoux", "Gruissan"]  # three communes in common
NIGHTLY_CAMPAIGNS = {"nuit-a": ["Nîmes", "Perpignan"], "nuit-b": ["Foix"]}  # nuit-a is sharded
# Each run: 5 communes x 2 pictures, in chunks of 8 (batch size 1): the two runs' 4 chunks at once
# are more than one render worker takes (2 under way), so both machines' workers can render (which
# one a chunk goes to is Prefect's delivery).
SQUARES = {"formats": ["instagram_square"], "audiences": ["residents"]}  # 2 pictures a commune (fr, oc)
QUICK = {"model": "demo", "steps": 2}
LEASE_S = 15  # the claims' lease (default 40 s): a killed render worker is noticed sooner
STARTED = re.compile(r"Flow run '(.+)' submitted to infrastructure")


@dataclass
class Machine:
    environment: dict[str, str]
    flow_workers: list[subprocess.Popen]
    render_worker: subprocess.Popen
    logs: Path  # a file per worker


@dataclass
class Cluster:
    api_url: str
    out: Path  # on the "shared mount"
    record_url: str
    prefect_database_url: str
    project: Path  # machine "a"'s project folder
    machines: dict[str, Machine]


def _machine_folder(root: Path, name: str) -> Path:
    """A machine's own folders: its Prefect home, its keys (a copy) and its project folder: the
    charter, and campaigns for the nightly: two small ones, the sample kept for runs started by
    hand (inactive: the nightly leaves it alone)."""
    folder = root / name
    project = folder / "project"
    shutil.copytree(REPO / "brand_assets", project / "brand_assets")
    (project / "campaigns").mkdir()
    sample = yaml.safe_load((REPO / "campaigns" / "ete-2027.yaml").read_text(encoding="utf-8"))
    campaigns = {"ete-2027": sample | {"active": False}}
    for slug, communes in NIGHTLY_CAMPAIGNS.items():
        campaigns[slug] = sample | {
            "name": slug.replace("-", " ").capitalize(),
            "communes": {"file": sample["communes"]["file"], "names": communes},
            "audiences": {"residents": sample["audiences"]["residents"]},
            "formats": ["instagram_square"],
            "steps": 2,
            "review": True,  # the nightly's runs wait for review as their campaign says
        }
    for slug, campaign in campaigns.items():
        text = yaml.safe_dump(campaign, allow_unicode=True, sort_keys=False)
        (project / "campaigns" / f"{slug}.yaml").write_text(text, encoding="utf-8")
    shutil.copytree(keys_dir(), folder / "keys")
    return folder


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    shared = root / "shared"
    record_url = new_database(postgres_url, "record")
    prefect_database_url = new_database(postgres_url, "prefect")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    environments = {}
    for name in ("a", "b"):
        folder = _machine_folder(root, name)
        environments[name] = serving_environment(
            api_url,
            {
                "PREFECT_HOME": str(folder / "prefect-home"),
                "VISUELS_HOME": str(folder / "project"),
                "VISUELS_KEYS_DIR": str(folder / "keys"),
                "VISUELS_DATABASE_URL": record_url,
                "PREFECT_LOCAL_STORAGE_PATH": str(shared / "prefect-storage"),
                "PREFECT_WORKER_QUERY_SECONDS": "1",
                "PREFECT_RUNNER_POLL_FREQUENCY": "1",
                "VISUELS_CLAIM_LEASE_S": str(LEASE_S),
            },
        )
    server_database = prefect_database_url.replace("+psycopg", "+asyncpg")
    server_environment = environments["a"] | {
        "PREFECT_API_DATABASE_CONNECTION_URL": server_database,
        # No scheduler: the nightly's schedule (02:00 Paris) would start it, its renders and their
        # reviews on its own when the test runs at that hour (it did, and counted four reviews).
        # The test starts the nightly itself; test_processes checks `make serve` schedules it.
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    }
    processes = [start_server(port, server_environment)]
    machines = {}
    try:
        with ExitStack() as files:
            wait_until_healthy(api_url, processes[0])
            register(environments["a"], pool_gpus=2)  # a CPU each: one render worker each, 2 slots
            render_workers = []
            for name, environment in environments.items():
                logs = root / name / "logs"
                logs.mkdir()
                output = files.enter_context((logs / "render-worker.log").open("w"))
                render_workers.append(start_render_worker(environment, gpu=None, output=output))
                flow_workers = start_flow_workers(environment, workers=1, gpus=0, logs=logs, machine=name)
                machines[name] = Machine(environment, flow_workers, render_workers[-1], logs)
                processes += [render_workers[-1], *flow_workers]
            wait_for_render_workers(api_url, render_workers)
            yield Cluster(
                api_url,
                shared / "outputs",
                record_url,
                prefect_database_url,
                root / "a" / "project",
                machines,
            )
    finally:
        stop(processes)


@pytest.fixture(autouse=True)
def _render_workers_shown_after_a_failure(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator[None]:
    """After a failed test: each render worker's threads (``kill -USR1``) and log tail, printed
    where pytest reports the failure, so a stuck chunk says where it waited."""
    yield
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        _show_render_workers(cluster.machines)


def _show_render_workers(machines: dict[str, Machine]) -> None:
    for machine in machines.values():
        if machine.render_worker.poll() is None:
            os.kill(machine.render_worker.pid, signal.SIGUSR1)
    time.sleep(1.0)
    for name, machine in machines.items():
        lines = (machine.logs / "render-worker.log").read_text(encoding="utf-8", errors="replace").splitlines()
        print(f"--- machine {name}, render worker, last lines of its log", *lines[-150:], sep="\n")


def _render_parameters(out: Path, communes: list[str]) -> dict:
    return {
        "campaign": "campaigns/ete-2027.yaml",
        "selection": {"communes": communes, **SQUARES},
        "overrides": QUICK,
        "review": "yes",
        "run": {"output_dir": str(out), "shard_size": 0, "batch_size": 1},
    }


def _flow_runs(client: SyncPrefectClient, flow: str) -> list[FlowRun]:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])))


def _wait_until_suspended(client: SyncPrefectClient, count: int, timeout: float = 180) -> list[FlowRun]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reviews = _flow_runs(client, "review-campaign")
        if len(reviews) == count and all(run.state and run.state.name == "Suspended" for run in reviews):
            return reviews
        time.sleep(1)
    raise AssertionError(f"not {count} suspended reviews: {[(run.name, run.state) for run in reviews]}")


def _started_by(machine: Machine) -> list[str]:
    return [name for log in machine.logs.glob("*-*-*.log") for name in STARTED.findall(log.read_text())]


# The limit counts the cluster's start too (about 80 s, its fixture), and the test takes about
# 200 s on 2 quiet cores: a shared machine doubles both.
@pytest.mark.timeout(600)
def test_two_machines_render_two_overlapping_runs_once_and_the_nightly_completes_while_reviews_wait(
    cluster: Cluster,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from visuels.flows.render_batches import connected_render_workers
    from visuels.flows.sub_runs import wait_for_runs

    out = cluster.out
    with temporary_settings({PREFECT_API_URL: cluster.api_url}), get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name("gpu").limit == 4  # 2 slots per GPU of the pool

        # 1. Two overlapping runs at once, on whichever machines' workers take them.
        started = [
            run_deployment("render-campaign/render-campaign", parameters=_render_parameters(out, communes), timeout=0)
            for communes in (FIRST_RUN, SECOND_RUN)
        ]
        runs = wait_for_runs([run.id for run in started], limit_s=300)
        assert all(run.state.is_completed() for run in runs), [run.state for run in runs]
        _wait_until_suspended(client, count=2)  # each waits with no process and no slot

        # 2. The worst case, on "a"'s workers alone: the nightly and its two campaigns' runs need
        # three default slots of two, one campaign needs its shards, two reviews wait.
        stop(cluster.machines["b"].flow_workers)
        nightly = run_deployment(
            "render-nightly/render-nightly",
            parameters={"output_dir": str(out), "shard_size": 1},
            timeout=480,
            poll_interval=2,
        )
        assert nightly.state is not None and nightly.state.is_completed(), nightly.state
        # Only the runs the test starts: none scheduled for the coming nights, to start on their own.
        assert [run.state_type for run in _flow_runs(client, "render-nightly")] == ["COMPLETED"]
        renders = _flow_runs(client, "render-campaign")
        assert len(renders) == 2 + 2 + 2  # the overlapping runs, the nightly's two, nuit-a's two shards
        assert all(run.state and run.state.is_completed() for run in renders)
        reviews = _wait_until_suspended(client, count=4)  # a review per run that rendered
        nightly_runs = {run.name for run in renders + reviews if run.start_time >= nightly.start_time}
        assert set(_started_by(cluster.machines["a"])) >= nightly_runs | {nightly.name}

        # 3. A review answered starts again and publishes its files.
        [answered] = [review for review in reviews if review.name == f"review-{runs[0].name}"]
        resume_flow_run(answered.id, run_input={"reviewer": "test"})
        [answered] = wait_for_runs([answered.id], limit_s=180)
        assert answered.state.is_completed(), answered.state
        every_run = [*renders, *reviews, nightly]
        # Both render workers served the pool to the end. Which one a chunk goes to is Prefect's
        # delivery (either may take them all while the other waits): not asserted.
        assert len(connected_render_workers()) == len(cluster.machines)

    # Each flow run started once, on one machine or the other; the answered review once more.
    started_runs = _started_by(cluster.machines["a"]) + _started_by(cluster.machines["b"])
    assert sorted(started_runs) == sorted([run.name for run in every_run] + [answered.name])
    # The server kept them in PostgreSQL.
    server_database = create_engine(cluster.prefect_database_url)
    try:
        with server_database.connect() as connection:
            ran = "SELECT COUNT(*) FROM flow_run WHERE state_type <> 'SCHEDULED'"  # not the nightly's next nights
            assert connection.exec_driver_sql(ran).scalar() == len(every_run)
    finally:
        server_database.dispose()

    # Every job rendered once, by the render workers (a chunk whose pictures the other had claimed
    # renders none: that worker waits, and loads no model for it); none in a flow run's process.
    rendered = {}
    for name, machine in cluster.machines.items():
        log = (machine.logs / "render-worker.log").read_text(encoding="utf-8")
        assert log.count("loading model demo") <= 1, log  # kept loaded between runs
        rendered[name] = sum(int(count) for count in re.findall(r"rendered (\d+) images?:", log))

    # The record: exactly these files, one export row each, the chain valid, every file verifying.
    elsewhere = out.parent / "planned"
    plans = [
        plan_render(
            cluster.project / "campaigns" / "ete-2027.yaml",
            elsewhere,
            Selection(communes=sorted({*FIRST_RUN, *SECOND_RUN}), **SQUARES),
            Overrides(**QUICK),
        ),
        *(plan_render(cluster.project / "campaigns" / f"{slug}.yaml", elsewhere) for slug in NIGHTLY_CAMPAIGNS),
    ]
    assert_record_matches_files(out, *plans, url=cluster.record_url)
    assert sum(rendered.values()) == sum(len(plan.jobs) for plan in plans), rendered
    slug = plans[0].campaign_slug
    database = Database(cluster.record_url)
    try:
        files = {key: entry["file"] for key, entry in manifest.entries(database, slug).items()}
        asked = pictures_of_review(database, answered.parameters["batch"])  # frozen in the shared record
    finally:
        database.close()
    published = {
        path.relative_to(out / slug / "approved").as_posix() for path in (out / slug / "approved").rglob("*.png")
    }
    assert published == {files[key].split("/", 1)[1] for key in asked}
    assert published  # the first run rendered some of its jobs itself


def test_a_render_worker_killed_mid_chunk_fails_its_run_within_a_minute(cluster: Cluster) -> None:
    """Last (it kills a render worker): the run that sent the chunk notices its claims lapse."""

    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from visuels.flows.sub_runs import wait_for_runs

    logs = {name: machine.logs / "render-worker.log" for name, machine in cluster.machines.items()}
    chunks_before = {name: log.read_text().count("Submitting task run") for name, log in logs.items()}
    parameters = {
        "campaign": "campaigns/ete-2027.yaml",
        "selection": {"communes": ["Montpellier"], "formats": ["instagram_square", "story"]},  # 12 jobs
        "overrides": {"model": "demo", "steps": 40},  # long enough to be killed in the middle
        "run": {"output_dir": str(cluster.out.parent / "killed"), "shard_size": 0, "batch_size": 1},
    }
    with temporary_settings({PREFECT_API_URL: cluster.api_url}):
        run = run_deployment("render-campaign/render-campaign", parameters=parameters, timeout=0)
        deadline, rendering = time.monotonic() + 120, None
        while rendering is None and time.monotonic() < deadline:
            started = [
                name for name, log in logs.items() if log.read_text().count("Submitting task run") > chunks_before[name]
            ]
            rendering = started[0] if started else None
            time.sleep(0.2)
        assert rendering is not None, "no render worker took the chunk"
        os.kill(cluster.machines[rendering].render_worker.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        [run] = wait_for_runs([run.id], limit_s=180)
    assert run.state.is_failed(), run.state
    # Killed before or after it started the chunk: either way the run fails, saying so.
    assert re.search(r"the render worker (rendering it|that took its chunk) stopped", run.state.message), run.state

    # Its log ends with that one line, no traceback after it.
    ended, deadline = f"Flow run '{run.name}' - Finished in state Failed", time.monotonic() + 30

    def run_log() -> str:  # the default worker that started it passes the run's output on
        logs = [
            log.read_text() for machine in cluster.machines.values() for log in machine.logs.glob("*-default-*.log")
        ]
        return next((log for log in logs if ended in log), "")

    while not run_log() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert run_log()
    time.sleep(2)  # anything the run's process logs after its last state
    assert "Traceback" not in run_log().split(ended)[1]
    # Claims lapse LEASE_S after their last renewal and the run looks every 10 s: about half a
    # minute here, a minute with the default lease (measured, not asserted: this machine is shared).
    print(f"the run failed {time.monotonic() - killed_at:.0f} s after its render worker was killed")
