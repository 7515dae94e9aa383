"""Sending a run's chunks to render workers: a few queued at a time, in order; a lost chunk fails.

The task worker itself runs in tests/test_served.py; here the task's `.delay()` is replaced by a
recorder, so the queueing logic is checked without a server.
"""

from __future__ import annotations

import contextvars
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from contextlib import nullcontext, suppress
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
import visuels.flows.render_batches as render_batches_module
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, temporary_settings
from visuels.engine.run import export_target
from visuels.errors import OperationalError
from visuels.flows.render_batches import CHUNKS_PER_DEVICE, render_batches, render_chunk_task, serve_until_stopped
from visuels.planning.jobs import RenderJob
from visuels.planning.plan import RenderPlan, plan_render
from visuels.planning.request import RenderSettings


class FakeChunk:
    """A chunk a render worker has taken: it finishes when waited for (or was dropped)."""

    def __init__(self, jobs: list[RenderJob], workers: FakeWorkers, dropped: bool, stateless_waits: int) -> None:
        self.jobs, self.workers, self.dropped = jobs, workers, dropped
        self.stateless_waits = stateless_waits
        self.task_run_id = f"chunk-{len(workers.sent)}"
        self.state = SimpleNamespace(is_final=lambda: True)

    def wait(self, timeout: float | None = None) -> None:
        if self.dropped:
            raise ObjectNotFound(http_exc=Exception("404"))
        if self.stateless_waits:
            # What Prefect raises while the server has not yet recorded the task run's state.
            self.stateless_waits -= 1
            raise RuntimeError(f"Task run {self.task_run_id} has no state which means it hasn't started yet.")

    def result(self) -> list[str]:
        self.workers.queued -= 1
        return [job.key for job in self.jobs]


class FakeWorkers:
    """Stands in for render_chunk_task: records what is sent and how many wait at once."""

    def __init__(self, drop: int | None, stateless_waits: int) -> None:
        self.sent: list[list[RenderJob]] = []
        self.queued = self.most_queued = 0
        self.drop, self.stateless_waits = drop, stateless_waits

    def delay(self, setup: object, jobs: list[RenderJob], *arguments: object) -> FakeChunk:
        chunk = FakeChunk(jobs, self, dropped=len(self.sent) == self.drop, stateless_waits=self.stateless_waits)
        self.sent.append(jobs)
        self.queued += 1
        self.most_queued = max(self.most_queued, self.queued)
        return chunk


class FakeClient:
    """Stands in for the API: every chunk not collected yet is still scheduled; cancellations are noted."""

    def __init__(self) -> None:
        self.cancelled: list[str] = []

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read_task_run(self, task_run_id: str) -> SimpleNamespace:
        return SimpleNamespace(state=SimpleNamespace(is_final=lambda: False, is_running=lambda: False))

    def set_task_run_state(self, task_run_id: str, state: object, force: bool) -> None:
        self.cancelled.append(task_run_id)


@pytest.fixture
def with_one_render_worker(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeWorkers]:
    def install(drop: int | None = None, stateless_waits: int = 0) -> FakeWorkers:
        workers = FakeWorkers(drop, stateless_waits)
        workers.api = FakeClient()
        monkeypatch.setattr(render_batches_module, "get_client", lambda sync_client: workers.api)
        monkeypatch.setattr(render_batches_module, "connected_render_workers", lambda: frozenset({"worker-1"}))
        monkeypatch.setattr(render_batches_module, "render_room", lambda: (frozenset({"worker-1"}), 1))
        monkeypatch.setattr(render_batches_module, "render_chunk_task", workers)
        monkeypatch.setattr(render_batches_module, "BATCHES_PER_CHUNK", 1)
        monkeypatch.setattr(render_batches_module, "STATE_POLL_S", 0.0)
        return workers

    return install


def send(plan: RenderPlan, out: Path, progress: Callable[[int], None]) -> list[str]:
    return render_batches(plan, export_target(plan, out), RenderSettings(batch_size=1), "gpu", on_progress=progress)


def test_chunks_go_to_the_render_workers_a_few_at_a_time_in_order(
    make_campaign: Callable[..., Path], tmp_path: Path, with_one_render_worker: Callable[..., FakeWorkers]
) -> None:
    plan = plan_render(make_campaign(), tmp_path / "outputs")  # 2 communes x 2 formats
    workers = with_one_render_worker()
    progress: list[int] = []
    done = send(plan, tmp_path, progress.append)
    assert len(workers.sent) == 4
    assert done == [job.key for chunk in workers.sent for job in chunk]  # collected in the order sent
    assert sorted(done) == sorted(job.key for job in plan.pending)
    assert workers.most_queued == CHUNKS_PER_DEVICE
    assert progress == [1, 2, 3, 4]


def test_a_chunk_without_a_state_yet_is_waited_for(
    make_campaign: Callable[..., Path], tmp_path: Path, with_one_render_worker: Callable[..., FakeWorkers]
) -> None:
    plan = plan_render(make_campaign(), tmp_path / "outputs")
    with_one_render_worker(stateless_waits=3)
    assert sorted(send(plan, tmp_path, lambda done: None)) == sorted(job.key for job in plan.pending)


def test_a_chunk_a_worker_dropped_fails_the_run(
    make_campaign: Callable[..., Path], tmp_path: Path, with_one_render_worker: Callable[..., FakeWorkers]
) -> None:
    plan = plan_render(make_campaign(), tmp_path / "outputs")
    workers = with_one_render_worker(drop=1)
    with pytest.raises(RuntimeError, match="dropped chunk chunk-1"):
        send(plan, tmp_path, lambda done: None)
    assert workers.api.cancelled == ["chunk-2"]  # the run's chunk no worker had started yet: cancelled


class StartedChunk:
    """A chunk's task run that a render worker started, ending after ``waits`` waits (None: never)."""

    task_run_id = "chunk-1"

    def __init__(self, waits: int | None) -> None:
        self.left = waits
        self.state = SimpleNamespace(
            is_final=lambda: self.left == 0, is_running=lambda: self.left != 0, is_pending=lambda: False
        )

    def wait(self, timeout: float) -> None:
        if self.left:
            self.left -= 1

    def result(self) -> list[str]:
        return ["done"]


def _watch(
    abandoned: Callable[[list], bool], workers: int = 1, running: int = 0, seen: int | None = None
) -> render_batches_module.RemoteWatch:
    """A watch over ``workers`` render workers running ``running`` chunks; the run saw ``seen`` at its
    start (more: some of them are gone since)."""
    connected = frozenset(f"worker-{n}" for n in range(workers))
    started_with = {f"worker-{n}" for n in range(workers if seen is None else seen)}
    return render_batches_module.RemoteWatch(abandoned=abandoned, room=lambda: (connected, running), seen=started_with)


def test_a_chunk_whose_render_worker_died_fails_the_run_once_its_claims_lapse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import update
    from visuels.engine.claims import JobClaims, abandoned
    from visuels.errors import WorkerLostError
    from visuels.record.database import Database, claim_owners_table, database_url

    url = database_url(tmp_path)
    chunk = [SimpleNamespace(key=f"{n:064x}", relative_path=f"c/{n}.png") for n in range(3)]
    monkeypatch.setattr(render_batches_module, "CHECK_EVERY_S", 0.01)
    database = Database(url)
    watch = _watch(partial(abandoned, database, tmp_path))
    with JobClaims(url, tmp_path) as worker:
        worker.take(chunk)  # a render worker at work: its lease is live
        assert render_batches_module._chunk_result(StartedChunk(waits=5), chunk, watch) == ["done"]
        with database.transaction() as connection:  # it died 40 s ago: nobody renewed its lease since
            connection.execute(update(claim_owners_table).values(expires=0.0))
        with pytest.raises(WorkerLostError, match="the render worker rendering it stopped"):
            render_batches_module._chunk_result(StartedChunk(waits=None), chunk, watch)
    database.close()


class WaitingChunk:
    """A chunk's task run that never starts (no worker took it, or the one that did died first)."""

    task_run_id = "chunk-1"
    state = SimpleNamespace(is_final=lambda: False, is_running=lambda: False, is_pending=lambda: False)

    def wait(self, timeout: float) -> None:
        return None


def test_a_chunk_nobody_starts_fails_the_run_once_a_worker_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    from visuels.errors import WorkerLostError

    monkeypatch.setattr(render_batches_module, "CHUNK_START_GRACE_S", 0.05)
    monkeypatch.setattr(render_batches_module, "CHECK_EVERY_S", 0.01)
    monkeypatch.setattr(render_batches_module, "CHUNK_TIMEOUT_S", 0.5)
    chunk = [SimpleNamespace(key="0" * 64, relative_path="c/0.png")]
    nobody = lambda jobs: False  # noqa: E731 - no claim anywhere: it never started
    with pytest.raises(WorkerLostError, match="no render worker took its chunk"):
        render_batches_module._chunk_result(WaitingChunk(), chunk, _watch(nobody, workers=0))
    # A worker has room, none takes it, and one of the run's workers is gone: it took the chunk and
    # died before starting it.
    with pytest.raises(WorkerLostError, match="stopped before starting it"):
        render_batches_module._chunk_result(WaitingChunk(), chunk, _watch(nobody, workers=2, running=3, seen=3))
    # Every worker busy with other runs' chunks: it waits its turn (here until the long timeout).
    busy = _watch(nobody, workers=2, running=2 * render_batches_module.CHUNKS_PER_DEVICE)
    with pytest.raises(TimeoutError):
        render_batches_module._chunk_result(WaitingChunk(), chunk, busy)
    # A worker has room but none is gone: a busy worker holds the chunk (Prefect's task workers take
    # the next task before they have room to run it) and starts it when it has room. It waits.
    held = _watch(nobody, workers=2, running=3)
    with pytest.raises(TimeoutError):
        render_batches_module._chunk_result(WaitingChunk(), chunk, held)
    assert held.seen == {"worker-0", "worker-1"}
    # A worker missing at one look (its connection blipped) and back at the next is not gone.
    looks = iter([frozenset({"worker-0"})])
    blip = render_batches_module.RemoteWatch(
        abandoned=nobody, room=lambda: (next(looks, frozenset({"worker-0", "worker-1"})), 1), seen=set(held.seen)
    )
    with pytest.raises(TimeoutError):
        render_batches_module._chunk_result(WaitingChunk(), chunk, blip)
    # A worker that joined during the run is seen at the looks while another chunk runs: when it
    # dies holding a chunk, that chunk is lost.
    connected = [frozenset({"worker-0", "worker-1"})]
    joined = render_batches_module.RemoteWatch(abandoned=nobody, room=lambda: (connected[0], 1), seen={"worker-0"})
    assert render_batches_module._chunk_result(StartedChunk(waits=2), chunk, joined) == ["done"]
    connected[0] = frozenset({"worker-0"})
    with pytest.raises(WorkerLostError, match="stopped before starting it"):
        render_batches_module._chunk_result(WaitingChunk(), chunk, joined)
    # A worker found gone before a chunk was sent cannot hold it: that chunk waits its turn.
    with pytest.raises(TimeoutError):
        render_batches_module._chunk_result(WaitingChunk(), chunk, joined, sent=time.monotonic())


class PendingChunk:
    """A chunk's task run a render worker took (pending: Prefect's task worker says so as it starts
    it) and never started: the worker died in between."""

    task_run_id = "chunk-1"
    state = SimpleNamespace(is_final=lambda: False, is_running=lambda: False, is_pending=lambda: True)

    def wait(self, timeout: float) -> None:
        return None


def test_a_chunk_a_worker_took_and_died_with_before_starting_it_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that joined between two of the run's looks, took a chunk and died before it started
    it was never seen gone: the chunk waited for the six-hour bound. Taken, it is pending; once
    the worker had time to claim it, no live claim means the worker is gone."""
    from visuels.errors import WorkerLostError

    monkeypatch.setattr(render_batches_module, "CHUNK_START_GRACE_S", 0.05)
    monkeypatch.setattr(render_batches_module, "CHECK_EVERY_S", 0.01)
    monkeypatch.setattr(render_batches_module, "CHUNK_TIMEOUT_S", 0.5)
    chunk = [SimpleNamespace(key="0" * 64, relative_path="c/0.png")]
    claimed = {"live": True}
    watch = _watch(lambda jobs: not claimed["live"], workers=1, running=0)  # never seen gone
    with pytest.raises(TimeoutError):  # claimed: at work, waiting (here until the short bound)
        render_batches_module._chunk_result(PendingChunk(), chunk, watch)
    claimed["live"] = False
    with pytest.raises(WorkerLostError, match="the render worker rendering it stopped"):
        render_batches_module._chunk_result(PendingChunk(), chunk, watch)


class LocalChunks:
    """Stands in for render_chunk_task.submit in the run's own process: each chunk runs in a thread,
    in a copy of the submitting context as Prefect's task runner does, batch by batch while its run
    lets it; the chunk numbered ``failing`` fails at once."""

    def __init__(self, failing: int) -> None:
        self.failing = failing
        self.pool = ThreadPoolExecutor(4)
        self.batches_after_failure = 0
        self.failed = threading.Event()
        self.running = 0
        self.lock = threading.Lock()

    def submit(self, setup: object, jobs: list, target: object, *arguments: object) -> LocalFuture:
        number = self.sent = getattr(self, "sent", -1) + 1
        context = contextvars.copy_context()
        return LocalFuture(self.pool.submit(context.run, self.render, number, target))

    def render(self, number: int, target: object) -> list[str]:
        keep_going = render_batches_module._keep_going(None)
        with self.lock:
            self.running += 1
        try:
            if number == self.failing:
                self.failed.set()
                raise RuntimeError("the model failed")
            for _batch in range(200):
                if keep_going() is not None:
                    raise RuntimeError("stopped")
                if self.failed.is_set():
                    self.batches_after_failure += 1
                time.sleep(0.01)
            return []
        finally:
            with self.lock:
                self.running -= 1


class LocalFuture:
    def __init__(self, future: Future) -> None:
        self.future = future

    def result(self) -> list[str]:
        return self.future.result()

    def wait(self) -> None:
        wait_for([self.future])


def test_a_failing_chunk_stops_the_runs_other_chunks_and_the_run_waits_for_them(
    make_campaign: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = plan_render(make_campaign(), tmp_path / "outputs")  # 4 chunks of one job
    chunks = LocalChunks(failing=0)
    monkeypatch.setattr(render_batches_module, "connected_render_workers", frozenset)
    monkeypatch.setattr(render_batches_module, "render_chunk_task", chunks)
    monkeypatch.setattr(render_batches_module, "BATCHES_PER_CHUNK", 1)
    monkeypatch.setattr(render_batches_module, "rendering_here", lambda settings: nullcontext(FakeRenderer()))
    with pytest.raises(RuntimeError, match="the model failed"):
        send(plan, tmp_path, lambda done: None)
    assert chunks.running == 0  # none still rendering when the run goes on to fail (and closes its renderer)
    assert chunks.batches_after_failure < 10  # each stopped before its next batch
    chunks.pool.shutdown()


class FakeRenderer:
    host = SimpleNamespace(device=SimpleNamespace(type="cpu"))


def test_a_chunk_on_a_render_worker_stops_once_its_run_has_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    states = {"state": SimpleNamespace(is_final=lambda: False, name="Running")}

    class Client:
        def __enter__(self) -> Client:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def read_flow_run(self, run_id: object) -> SimpleNamespace:
            return SimpleNamespace(state=states["state"])

    monkeypatch.setattr(render_batches_module, "get_client", lambda sync_client: Client())
    monkeypatch.setattr(render_batches_module, "CHECK_EVERY_S", 0.0)
    keep_going = render_batches_module._keep_going("00000000-0000-0000-0000-000000000001")
    assert keep_going() is None
    states["state"] = SimpleNamespace(is_final=lambda: True, name="Failed")
    assert keep_going() == "its run ended (Failed)"


def test_a_chunk_waiting_for_the_gpu_holds_its_claims_so_its_run_sees_it_alive(
    make_campaign: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A training run may hold the pool's GPU limit for hours: a render worker's chunk waiting for
    it has claimed its jobs already, so the run that sent it waits instead of failing."""
    from contextlib import contextmanager

    from visuels.engine.claims import abandoned
    from visuels.record.database import Database

    plan = plan_render(make_campaign(), tmp_path / "outputs")
    target = export_target(plan, tmp_path / "outputs")
    database = Database(target.database_url)
    seen_while_waiting: list[bool] = []

    @contextmanager
    def gpu_limit_held_by_a_training(name: str, occupy: int, strict: bool):
        seen_while_waiting.append(abandoned(database, target.output_root, plan.pending))
        yield

    def render_jobs(*arguments: object) -> list:
        gpu_slot = arguments[-1]
        with gpu_slot():  # as the renderer takes it, around its batches
            return []

    monkeypatch.setattr(render_batches_module, "concurrency", gpu_limit_held_by_a_training)
    monkeypatch.setattr(render_batches_module, "render_jobs", render_jobs)
    token = render_batches_module.process_renderer.set(FakeRenderer())
    try:
        render_batches_module.render_chunk_task.fn(plan.setup, plan.pending, target, RenderSettings(), "gpu")
    finally:
        render_batches_module.process_renderer.reset(token)
    assert seen_while_waiting == [False]  # claimed, and the lease live, before the wait
    assert abandoned(database, target.output_root, plan.pending)  # released once the chunk ended
    database.close()


class UnansweringServer:
    """A Prefect API address whose server takes connections and answers none: the first one it
    closes at once (a refused handshake), the others it keeps open in silence (a stalled server)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/api"
        self.taken: list[socket.socket] = []
        threading.Thread(target=self._take, daemon=True).start()

    def _take(self) -> None:
        with suppress(OSError):  # the listener closed: the test is over
            while True:
                connection, _ = self.listener.accept()
                self.taken.append(connection)
                if len(self.taken) == 1:
                    connection.close()

    def close(self) -> None:
        for connection in [self.listener, *self.taken]:
            connection.close()


@pytest.mark.slow  # Prefect's handshake waits its 10 s
@pytest.mark.timeout(60)
def test_a_render_worker_that_loses_its_server_connects_again_instead_of_ending(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Prefect's task worker returned, as if stopped, after its server stalled for 10 s: a render
    # worker of `make serve` ended with exit code 0 and runs rendered without it.
    server = UnansweringServer()
    try:
        with temporary_settings({PREFECT_API_URL: server.url}), pytest.raises(OperationalError) as raised:
            serve_until_stopped(render_chunk_task, 1, retry_after_s=0.01, attempts=2)
    finally:
        server.close()
    assert len(server.taken) == 2  # it came back after the refused handshake, then gave up on the silence
    assert "lost 2 times in a row: it did not answer" in str(raised.value)
    assert any("connecting again" in record.message for record in caplog.records)


@pytest.mark.integration  # a render worker process
@pytest.mark.timeout(120)
def test_ctrl_c_stops_a_render_worker_without_a_traceback() -> None:
    """Ctrl-C in `make serve`'s terminal reaches its render workers too: each printed a
    KeyboardInterrupt traceback into the console."""
    server = UnansweringServer()
    try:
        worker = subprocess.Popen(
            [sys.executable, "-m", "visuels.flows.render_batches"],
            env=os.environ | {"PREFECT_API_URL": server.url},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 90
        while not server.taken and time.monotonic() < deadline:  # serving: it has tried the server
            time.sleep(0.2)
        worker.send_signal(signal.SIGINT)
        output = worker.communicate(timeout=60)[0]
    finally:
        server.close()
    assert server.taken and worker.returncode == 130 and "Traceback" not in output, output
