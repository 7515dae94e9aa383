"""The staged renderer: the GPU stage overlaps the CPU stage under back-pressure, pictures do not
depend on batch size or worker count, a failure names its job, and a killed run loses nothing."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from visuels.engine.cpu_stage import CpuStage
from visuels.engine.renderer import Renderer
from visuels.engine.run import export_target, render_jobs
from visuels.errors import CampaignError
from visuels.models.generation import GeneratedPicture
from visuels.models.host import ModelHost
from visuels.models.spec import BATCH_FIELDS
from visuels.planning.plan import RenderPlan, plan_render
from visuels.planning.request import RenderSettings
from visuels.record.database import database_url

from tests.helpers import render_now
from tests.test_processes import wait_until_group_gone


class FakeHost:
    """Generates instantly and notes how many pictures were still being finished at each call."""

    compile_models = False
    device = torch.device("cpu")

    def __init__(self, cpu: SlowCpu) -> None:
        self.cpu = cpu
        self.unfinished_at_calls: list[int] = []

    def generate_pictures(self, model, dtype, lora, jobs, pad_to=None, noise_key=None) -> list[GeneratedPicture]:
        self.unfinished_at_calls.append(self.cpu.unfinished)
        return [GeneratedPicture(np.zeros((8, 8, 3), np.uint8)) for _ in jobs]


class SlowCpu:
    """Two threads that take 100 ms per picture: far slower than the fake GPU stage, even on a loaded
    machine where each batch's claims take a while (at 20 ms the queue sometimes drained between
    two batches, and the test read that as the GPU stage waiting)."""

    workers = 2

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(2)
        self.unfinished = 0  # submitted, not finished
        self.running = 0  # being finished now
        self.lock = threading.Lock()

    def submit(self, target, job, pixels, key_visual=None) -> Future:
        with self.lock:
            self.unfinished += 1
        return self.pool.submit(self.finish, job)

    def finish(self, job) -> SimpleNamespace:
        with self.lock:
            self.running += 1
        time.sleep(0.1)
        with self.lock:
            self.unfinished -= 1
            self.running -= 1
        return SimpleNamespace(job=job)


def fake_job(number: int) -> SimpleNamespace:
    """A job with the fields batching reads: all in one batch group, each its own picture."""
    return SimpleNamespace(
        key=str(number),
        relative_path=f"{number}.png",
        prompt=f"picture {number}",
        negative_prompt="",
        seed=number,
        photo=None,
        **dict.fromkeys(BATCH_FIELDS, 1),
    )


class FakeTarget(SimpleNamespace):
    """Where claims are held; the renderer adds its claims' owner, as to an ExportTarget, and
    reads the watermark key its starting noise is marked under."""

    signing = SimpleNamespace(watermark=SimpleNamespace(value=1))

    def model_copy(self, update: dict) -> FakeTarget:
        return FakeTarget(**(vars(self) | update))


def test_the_gpu_stage_goes_on_while_the_queue_has_room_and_waits_when_full(tmp_path: Path) -> None:
    cpu = SlowCpu()
    host = FakeHost(cpu)
    renderer = Renderer(host, cpu, max_in_flight=6)  # type: ignore[arg-type]
    jobs = [fake_job(n) for n in range(40)]
    target = FakeTarget(database_url=database_url(tmp_path), output_root=tmp_path)
    exported = renderer.render(None, "float32", None, jobs, target, batch_size=2)  # type: ignore[arg-type]
    assert [item.job.key for item in exported] == [job.key for job in jobs]  # in order
    assert max(host.unfinished_at_calls) <= 6  # back-pressure: never more than the limit waiting
    assert sum(1 for unfinished in host.unfinished_at_calls if unfinished > 0) > 10  # no wait for an empty queue
    cpu.pool.shutdown()


class FailingHost(FakeHost):
    """Generates its first ``batches`` batches, then fails."""

    def __init__(self, cpu: SlowCpu, batches: int) -> None:
        super().__init__(cpu)
        self.batches = batches

    def generate_pictures(self, model, dtype, lora, jobs, pad_to=None, noise_key=None) -> list[GeneratedPicture]:
        if len(self.unfinished_at_calls) == self.batches:
            raise CampaignError("model", None, "the model failed")
        return super().generate_pictures(model, dtype, lora, jobs, pad_to, noise_key)


def test_a_failing_render_waits_for_the_pictures_it_started_before_letting_go_of_their_claims(
    tmp_path: Path,
) -> None:
    """Its claims are released when it leaves: a picture still being finished then could be taken and
    recorded by another run while this one records it too."""
    cpu = SlowCpu()
    renderer = Renderer(FailingHost(cpu, batches=3), cpu, max_in_flight=6)  # type: ignore[arg-type]
    jobs = [fake_job(n) for n in range(20)]
    target = FakeTarget(database_url=database_url(tmp_path), output_root=tmp_path)
    with pytest.raises(CampaignError, match="the model failed"):
        renderer.render(None, "float32", None, jobs, target, batch_size=2)  # type: ignore[arg-type]
    assert cpu.running == 0  # nothing started was still being finished when it let go
    cpu.pool.shutdown()


def test_a_render_asked_to_stop_starts_no_further_batch(tmp_path: Path) -> None:
    from visuels.engine.renderer import RenderStoppedError

    cpu = SlowCpu()
    host = FakeHost(cpu)
    renderer = Renderer(host, cpu)  # type: ignore[arg-type]
    jobs = [fake_job(n) for n in range(20)]
    target = FakeTarget(database_url=database_url(tmp_path), output_root=tmp_path)
    asked: list[int] = []

    def keep_going() -> str | None:
        asked.append(1)
        return "another chunk of the run failed" if len(asked) > 2 else None

    with pytest.raises(RenderStoppedError, match="another chunk of the run failed"):
        renderer.render(None, "float32", None, jobs, target, 2, keep_going=keep_going)  # type: ignore[arg-type]
    assert len(host.unfinished_at_calls) == 2 and cpu.running == 0
    cpu.pool.shutdown()


@pytest.fixture(scope="module")
def campaign_plan(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], RenderPlan]:
    """4 jobs (2 communes x 2 audiences, one format) planned into any output folder."""
    from tests.helpers import SAMPLE_CHARTER_DIR

    folder = tmp_path_factory.mktemp("campaign")
    campaign = folder / "campaign.yaml"
    campaign.write_text(
        f"""
name: Étapes
charter: {SAMPLE_CHARTER_DIR / "charter.yaml"}
communes: {{file: {SAMPLE_CHARTER_DIR / "communes.csv"}, names: ["Sète", "Collioure"]}}
prompt: "poster of {{commune}}, {{landscape}}, for {{audience}}"
season: summer
audiences: {{residents: families, visitors: tourists}}
formats: [instagram_square]
steps: 3
""",
        encoding="utf-8",
    )
    return lambda out: plan_render(campaign, out)


def pixels_by_file(out: Path) -> dict[str, np.ndarray]:
    return {
        str(path.relative_to(out)): np.asarray(Image.open(path).convert("RGB")).astype(int)
        for path in sorted(out.rglob("*.png"))
        if not {"thumbnails", "edges"} & set(path.parts)
    }


def nearly_equal(first: np.ndarray, second: np.ndarray) -> bool:
    """The same picture but for kernels' rounding: generation differs by batch size by a level or
    two, and where a colour sits on the edge between two palette colours, grading may pick the
    other one. So: mean difference under 0.05 levels, and under 0.01 % of pixels off by more than 4."""
    difference = np.abs(first - second)
    return difference.mean() < 0.05 and (difference.max(axis=2) > 4).mean() < 1e-4


def render_with(plan_for: Callable[[Path], RenderPlan], out: Path, workers: int, batch: int) -> dict[str, np.ndarray]:
    renderer = Renderer(ModelHost(torch.device("cpu")), CpuStage(workers))
    try:
        plan = plan_for(out)
        render_jobs(renderer, plan.setup, plan.pending, export_target(plan, out), RenderSettings(batch_size=batch))
    finally:
        renderer.close()
    return pixels_by_file(out)


@pytest.mark.timeout(300)
def test_a_render_waiting_for_another_runs_pictures_holds_no_gpu_slot(campaign_plan, tmp_path: Path, renderer) -> None:
    """Another run holds one picture's claim: this one renders the rest within a GPU slot, lets
    the slot go while it waits (the other may be waiting for a slot, holding that claim), and takes
    a slot again to render the picture once the other's lease has lapsed."""
    from contextlib import contextmanager

    from sqlalchemy import update
    from visuels.engine.claims import JobClaims
    from visuels.record.database import Database, claim_owners_table

    out = tmp_path / "outputs"
    plan = campaign_plan(out)
    events: list[str] = []

    @contextmanager
    def gpu_slot():
        events.append("taken")
        yield
        events.append("given back")

    url = database_url(out)
    out.mkdir()
    other = JobClaims(url, out)
    with other:
        other.take(plan.pending[-1:])
        settings = RenderSettings(batch_size=2)
        rendering = ThreadPoolExecutor(1).submit(
            render_jobs, renderer, plan.setup, plan.pending, export_target(plan, out), settings, gpu_slot=gpu_slot
        )
        deadline = time.monotonic() + 120
        while events != ["taken", "given back"] and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # a look or more of its wait
        assert events == ["taken", "given back"] and not rendering.done()  # waiting, and without the slot
        database = Database(url)
        with database.transaction() as connection:  # the other run died: its lease lapses
            connection.execute(
                update(claim_owners_table).values(expires=0.0).where(claim_owners_table.c.owner == other.owner)
            )
        database.close()
        exported = rendering.result(timeout=120)
    assert sorted(item.job.key for item in exported) == sorted(job.key for job in plan.pending)
    assert events == ["taken", "given back"] * 2


@pytest.mark.slow
def test_pictures_do_not_depend_on_worker_count_or_batch_size(campaign_plan, tmp_path: Path) -> None:
    one_worker = render_with(campaign_plan, tmp_path / "one", workers=1, batch=4)
    three_workers = render_with(campaign_plan, tmp_path / "three", workers=3, batch=4)
    batch_of_one = render_with(campaign_plan, tmp_path / "single", workers=0, batch=1)
    assert len(one_worker) == 4 and one_worker.keys() == three_workers.keys() == batch_of_one.keys()
    for name, picture in one_worker.items():
        assert np.array_equal(picture, three_workers[name]), name  # the CPU stage is deterministic
        assert nearly_equal(picture, batch_of_one[name]), name  # kernels round differently by batch size


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_a_failure_in_the_cpu_stage_names_the_job_and_keeps_what_was_done(
    campaign_plan, tmp_path: Path, renderer: Renderer
) -> None:
    out = tmp_path / "outputs"
    plan = campaign_plan(out)
    broken = plan.pending[2].model_copy(update={"charter_hash": "0" * 64})
    jobs = [*plan.pending[:2], broken]
    pool = Renderer(renderer.host, CpuStage(1))
    try:
        with pytest.raises(CampaignError, match="the charter changed since the campaign was planned"):
            render_jobs(pool, plan.setup, jobs, export_target(plan, out), RenderSettings(batch_size=1))
    finally:
        pool.cpu.close()
    assert [job.key for job in campaign_plan(out).pending] == [job.key for job in plan.pending[2:]]


def database_rows(out: Path, query: str) -> list[tuple]:
    if not (out / "visuels.sqlite").is_file():
        raise sqlite3.OperationalError("no database yet")  # connecting would create an empty file
    with sqlite3.connect(out / "visuels.sqlite") as connection:
        return connection.execute(query).fetchall()


@pytest.mark.integration
def test_a_killed_render_loses_nothing_and_a_rerun_renders_exactly_the_rest(
    make_campaign: Callable[..., Path], tmp_path: Path, renderer: Renderer
) -> None:
    campaign = make_campaign(audiences={"residents": "families", "visitors": "tourists"}, steps=2)  # 8 jobs
    out = tmp_path / "outputs"
    environment = os.environ | {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    }
    command = [
        sys.executable,
        "-c",
        "from visuels.flows.cli import main; raise SystemExit(main())",
        "render",
        str(campaign),
    ]
    command += ["--output-dir", str(out), "--batch-size", "1"]
    killed = subprocess.Popen(command, env=environment, start_new_session=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and killed.poll() is None:
        try:
            if database_rows(out, "SELECT COUNT(*) FROM outputs")[0][0] >= 1:
                break
        except sqlite3.OperationalError:
            pass  # no database, or no tables yet
        time.sleep(0.05)
    assert killed.poll() is None, "the render ended before it could be killed"
    os.killpg(killed.pid, signal.SIGKILL)  # the whole run: CLI, Prefect's server, CPU workers
    killed.wait()
    # As a person's rerun would: after the killed processes have died (the CPU workers were
    # still exiting when a rerun planned at once, and their half-written files looked in use).
    assert not wait_until_group_gone(killed.pid, within_s=30)
    recorded = database_rows(out, "SELECT COUNT(*) FROM outputs")[0][0]
    assert 1 <= recorded < 8

    # The same run again (here in this process): the killed run's claims are free at once, its
    # process being gone, and exactly the jobs it had not recorded are rendered.
    rerun = plan_render(campaign, out)
    assert len(rerun.pending) == 8 - recorded
    assert len(render_now(renderer, rerun, out)) == 8 - recorded
    assert database_rows(out, "SELECT COUNT(*) FROM claims") == [(0,)]

    reference = tmp_path / "uninterrupted"
    render_now(renderer, plan_render(campaign, reference), reference)
    finished = pixels_by_file(out)
    assert finished.keys() == pixels_by_file(reference).keys() and len(finished) == 8
    for name, picture in pixels_by_file(reference).items():
        assert nearly_equal(picture, finished[name]), name  # batch 1 there, batch 4 here
    assert not [path for path in out.rglob("*") if path.name.endswith(".tmp")]
    outputs = dict(database_rows(out, "SELECT file, sha256 FROM outputs"))
    assert outputs == {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in finished}
    exports = database_rows(out, "SELECT file, sha256, COUNT(*) FROM ledger WHERE parent_id IS NULL GROUP BY job_key")
    assert sorted(exports) == sorted((name, sha, 1) for name, sha in outputs.items())  # one export row per file


def test_auto_precision_is_resolved_by_the_machine_that_renders_and_recorded(
    campaign_plan: Callable[[Path], RenderPlan], tmp_path: Path, renderer: Renderer
) -> None:
    from visuels.record import manifest
    from visuels.record.database import Database

    plan = campaign_plan(tmp_path)
    assert plan.setup.precision == "auto"
    render_now(renderer, plan, tmp_path, plan.pending[:1])
    database = Database(database_url(tmp_path))
    try:
        [entry] = manifest.entries(database, plan.campaign_slug).values()
    finally:
        database.close()
    assert entry["inputs"]["precision"] == "auto" and entry["inputs"]["dtype"] == "float32"  # this CPU's choice
