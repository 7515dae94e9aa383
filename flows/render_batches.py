"""A render run's chunks: rendered in the run's own process, or by long-lived render workers.

    .venv/bin/python -m visuels.flows.render_batches     # a render worker; one per GPU (`make serve` starts them)

A task renders a chunk of a plan's jobs (several model batches) through the process's
``Renderer``: the GPU stage and its pool of CPU worker processes, each file recorded as it is
written. A process worker starts a new process for every flow run, which would load the model
again; a render worker is a Prefect task worker serving the `render-chunk` task: it stays up
between runs and keeps its models loaded. A run that finds one connected sends its chunks there
(`.delay()`); otherwise it renders them in its own process. Either way two chunks per device are
under way, so one chunk's last pictures are finished while the next one is generated.

When one chunk fails, the run fails, and its other chunks stop before their next batch: those in
the run's own process at once (it waits for them before closing its renderer), those sent away
once they see the run has ended (they ask the API every ``CHECK_EVERY_S``); those no worker has
started yet are cancelled. A chunk no render worker starts (none is connected, or the one it was
given died before starting it) fails the run within minutes, not hours.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING
from uuid import UUID

import httpx
import websockets.exceptions
from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound
from prefect.futures import PrefectFuture
from prefect.states import Cancelled, Failed, State
from prefect.task_worker import serve
from visuels._internal.i18n import counted
from visuels._internal.logs import quiet_third_party_logs
from visuels.engine.claims import JobClaims, abandoned
from visuels.engine.cpu_stage import ExportTarget
from visuels.engine.run import render_jobs
from visuels.errors import OperationalError, VisuelsError, WorkerLostError, first_line
from visuels.flows.names import SLOTS_PER_GPU
from visuels.models.devices import GPU_BATCH_SIZE, default_batch_size
from visuels.planning.jobs import RenderJob
from visuels.planning.plan import RenderPlan, RenderSetup
from visuels.planning.request import RenderSettings
from visuels.record.database import Database

if TYPE_CHECKING:  # imports the model libraries: only where a renderer is made
    from visuels.engine.renderer import Renderer

log = logging.getLogger(__name__)

CHUNKS_PER_DEVICE = SLOTS_PER_GPU  # one being generated, one being finished: the GPU never drains between chunks
BATCHES_PER_CHUNK = 8  # a task's size: Prefect's per-task cost stays under 1 % of its time
CHUNK_TIMEOUT_S = 6 * 3600.0  # a chunk still going after this is stuck: the run fails instead of waiting
CHECK_EVERY_S = 10.0  # how often a run looks at its chunks' claims: a dead worker is seen within a minute
CHUNK_START_GRACE_S = 20.0  # a chunk not started this long after it was sent is looked at: is it lost?
STATE_POLL_S = 0.5
RECONNECT_AFTER_S = 5.0  # a render worker that lost its server tries again this often, models kept loaded
# What losing the Prefect server looks like to a task worker: a socket error, its 10 s websocket
# handshake timing out (a server stalled on a locked database), a handshake or an API call refused.
LOST_SERVER = (OSError, websockets.exceptions.WebSocketException, httpx.TransportError)

# The renderer of this process: set by a render worker's main() or by the run rendering in its
# own process, read by the task. A context variable reaches the task worker's and the task
# runner's threads (both run tasks in a copy of the context) without living in a global.
process_renderer: ContextVar[Renderer | None] = ContextVar("process_renderer", default=None)
# Set by a run for the chunks it renders in its own process: when one fails, the others stop.
local_stop: ContextVar[threading.Event | None] = ContextVar("local_stop", default=None)


def _keep_going(run_id: str | None) -> Callable[[], str | None]:
    """What a chunk asks before each batch: why to stop (its run failed), or None. A chunk in the
    run's own process is told at once; one on a render worker asks the API, at most every
    ``CHECK_EVERY_S``, whether its run has ended."""
    stop = local_stop.get()
    asked = [0.0]

    def keep_going() -> str | None:
        if stop is not None and stop.is_set():
            return "another chunk of its run failed"
        if run_id is None or stop is not None or time.monotonic() - asked[0] < CHECK_EVERY_S:
            return None
        asked[0] = time.monotonic()
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(run_id)).state
        return f"its run ended ({state.name})" if state is not None and state.is_final() else None

    return keep_going


@dataclass
class RemoteWatch:
    """How a run watches the chunks it sent to render workers."""

    abandoned: Callable[[list[RenderJob]], bool]  # unfinished, and nobody holds a live claim on them
    room: Callable[[], tuple[frozenset[str], int]]  # render workers connected now, and chunks running on them
    seen: set[str] = field(default_factory=set)  # the render workers this run has seen connected
    gone_at: dict[str, float] = field(default_factory=dict)  # those no longer connected, since when

    def look(self) -> tuple[int, int]:
        """(render workers connected, chunks running on them), noting which the run saw are gone. A
        worker's identifier is its host and process: one started again is another; one that
        reconnected after a blip is back."""
        workers, running = self.room()
        now = time.monotonic()
        for worker in self.seen - workers:
            self.gone_at.setdefault(worker, now)
        for worker in workers:
            self.gone_at.pop(worker, None)
        self.seen.update(workers)
        return len(workers), running

    def gone_since(self, moment: float) -> bool:
        """Whether a worker was found gone after ``moment``: one gone before a chunk was sent cannot hold it."""
        return any(at > moment for at in self.gone_at.values())


@task(name="render-chunk", cache_policy=NO_CACHE)
def render_chunk_task(
    setup: RenderSetup,
    jobs: list[RenderJob],
    target: ExportTarget,
    settings: RenderSettings,
    gpu_limit: str | None,
) -> list[str] | State:
    """Render a chunk of jobs; return their keys (files and records are already committed)."""
    renderer = process_renderer.get()
    if renderer is None:
        raise RuntimeError("render-chunk runs only in a render worker or in a render run's own process")
    # The limit's name comes from the run: a render worker has no flow run of its own to ask.
    gpu_slot = partial(concurrency, gpu_limit, occupy=1, strict=False) if gpu_limit else nullcontext
    try:
        # The whole chunk claimed at once, before waiting for the GPU (a training run may hold it
        # for hours): other runs leave it alone, and the run that sent it sees it alive while the
        # claims are renewed, instead of taking the wait for a dead worker.
        with JobClaims(target.database_url, target.output_root) as claims:
            claims.take(jobs)
            keep_going = _keep_going(target.run_id)
            exported = render_jobs(renderer, setup, jobs, target, settings, claims, keep_going, gpu_slot)
            return [item.job.key for item in exported]
    except VisuelsError as exc:
        # A full disk, a changed charter: the chunk fails with its one line, and no traceback
        # fills the logs (the run passes the error on to whoever started it).
        return Failed(message=str(exc), data=exc)


def connected_render_workers() -> frozenset[str]:
    """The render workers the API knows now, by their identifiers (a temporary local server never has any)."""
    with get_client(sync_client=True) as client:
        response = client.request(
            "POST", "/task_workers/filter", json={"task_worker_filter": {"task_keys": [render_chunk_task.task_key]}}
        )
    response.raise_for_status()
    return frozenset(str(worker["identifier"]) for worker in response.json())


def render_room() -> tuple[frozenset[str], int]:
    """(render workers connected, render chunks running now): whether a worker has room for a chunk."""
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName, TaskRunFilterState
    from prefect.client.schemas.filters import TaskRunFilterStateType as StateTypes
    from prefect.client.schemas.objects import StateType

    running = TaskRunFilter(
        name=TaskRunFilterName(like_="render-chunk"),
        state=TaskRunFilterState(type=StateTypes(any_=[StateType.RUNNING])),
    )
    with get_client(sync_client=True) as client:
        return connected_render_workers(), len(client.read_task_runs(task_run_filter=running))


def _chunk_result(
    future: PrefectFuture[list[str]], chunk: list[RenderJob], watch: RemoteWatch | None, sent: float | None = None
) -> list[str]:
    """Wait for a chunk; a lost one fails the run rather than hang it.

    ``watch`` is given for a chunk sent to a render worker. Right after it starts, and for a
    moment after it ends, the server may not have recorded a state for the task run (states
    arrive as events): that is waited through, never taken for a failure. Once a worker has
    started it (or taken it, pending: after ``CHUNK_START_GRACE_S``, time to claim it), its claims
    are its sign of life: when none of its unfinished jobs has a live claim at two looks in a row,
    the worker is gone (leases lapse ``claim_lease_s`` after their owner stops renewing them), and
    the run fails within a minute, saying what to do. A chunk not taken ``CHUNK_START_GRACE_S``
    after it was sent is lost when no render worker is connected, or when one has room, none takes
    it and a render worker the run saw was found gone since it was sent: the one it was given died
    before starting it. A worker busy with other runs' chunks may hold it meanwhile (a Prefect task
    worker takes the next task before it has room to run it): with none gone since, it waits.
    """
    if watch is None:
        return future.result()
    sent = time.monotonic() if sent is None else sent  # when it was sent: the grace counts from there
    deadline = sent + CHUNK_TIMEOUT_S
    looked_dead = had_room = False
    taken_at: float | None = None  # when the chunk was first seen taken by a worker (pending, or running)
    while time.monotonic() < deadline:
        try:
            future.wait(timeout=CHECK_EVERY_S)
        except ObjectNotFound:
            # A worker deletes a task run it cannot start (say, unreadable parameters): its log says why.
            raise RuntimeError(f"a render worker dropped chunk {future.task_run_id}: see its log") from None
        except RuntimeError as exc:
            if "has no state" not in str(exc):
                raise
            time.sleep(STATE_POLL_S)
            state = None
        else:
            state = future.state
        if state is not None and state.is_final():
            return future.result()
        now = time.monotonic()
        # At every look, so that a worker that joins during the run and takes a chunk is known
        # before it can die with it.
        workers, running = watch.look()
        # Pending: a render worker took it and is starting it (it claims it within a moment).
        if state is not None and (state.is_running() or state.is_pending()):
            taken_at = now if taken_at is None else taken_at
            dead = watch.abandoned(chunk) and (state.is_running() or now - taken_at >= CHUNK_START_GRACE_S)
            if dead and looked_dead:
                raise WorkerLostError(
                    chunk[0].relative_path,
                    None,
                    "the render worker rendering it stopped (its claims lapsed): start it again and run"
                    " this render again; what was recorded is kept",
                )
            looked_dead = dead
            continue
        # Not started yet. Either it waits for a render worker with room (they are all busy with
        # other chunks, or a busy one holds it), or the worker it was given died before starting
        # it: the server gives a chunk to one worker only, so it would wait for ever. After a grace,
        # if no worker is connected, or one has had room at two looks in a row, none took it and
        # a worker was found gone since it was sent, it is lost.
        if now - sent < CHUNK_START_GRACE_S:
            continue
        if workers == 0:
            raise WorkerLostError(
                chunk[0].relative_path,
                None,
                "no render worker took its chunk in {CHUNK_START_GRACE_S:.0f} s and none is "
                "connected: start one (`make serve`) and run this render again; what was recorded is kept",
                CHUNK_START_GRACE_S=CHUNK_START_GRACE_S,
            )
        has_room = running < workers * CHUNKS_PER_DEVICE
        if has_room and had_room and watch.gone_since(sent):
            raise WorkerLostError(
                chunk[0].relative_path,
                None,
                "the render worker that took its chunk stopped before starting it: start it again and run"
                " this render again; what was recorded is kept",
            )
        had_room = has_room
    raise TimeoutError(f"chunk {future.task_run_id} did not finish within {CHUNK_TIMEOUT_S:.0f} s")


def chunks(jobs: list[RenderJob], size: int) -> Iterator[list[RenderJob]]:
    iterator = iter(jobs)
    while chunk := list(islice(iterator, size)):
        yield chunk


@contextmanager
def rendering_here(settings: RenderSettings) -> Iterator[Renderer]:
    """A renderer for this process while the block runs (a run with no render worker to send to)."""
    from visuels.engine.renderer import Renderer

    renderer = Renderer.for_device(settings.device, settings.cpu_workers, settings.compile)
    token = process_renderer.set(renderer)
    try:
        yield renderer
    finally:
        process_renderer.reset(token)
        renderer.close()


def render_batches(
    plan: RenderPlan,
    target: ExportTarget,
    settings: RenderSettings,
    gpu_limit: str | None,
    on_progress: Callable[[int], None],
) -> list[str]:
    """Render the plan's pending jobs chunk by chunk; ``on_progress`` gets the count done so far."""
    if not plan.pending:
        return []  # a quiet night: no question to the API either
    workers = connected_render_workers()
    sent_away = bool(workers)
    if sent_away:
        log.info("sending the chunks to %s", counted(len(workers), "render worker"))
    done: list[str] = []
    stop = threading.Event()
    with nullcontext() if sent_away else rendering_here(settings) as renderer, ExitStack() as closing:
        watch = None
        if sent_away:  # chunks sent away are watched through their claims: one database opening for all
            record = Database(target.database_url)
            closing.callback(record.close)
            watch = RemoteWatch(partial(abandoned, record, target.output_root), render_room, seen=set(workers))
        else:  # the chunks of this process see it from the context they are submitted in
            closing.callback(local_stop.reset, local_stop.set(stop))
        # Render workers choose their batch size when the run sets none: chunks are sized for a GPU.
        automatic = default_batch_size(renderer.host.device) if renderer else GPU_BATCH_SIZE
        chunk_size = BATCHES_PER_CHUNK * (settings.batch_size or automatic)
        window = CHUNKS_PER_DEVICE * max(1, len(workers))
        queued: deque[tuple[PrefectFuture[list[str]], list[RenderJob], float]] = deque()

        def collect_oldest() -> None:
            future, chunk, sent = queued.popleft()
            done.extend(_chunk_result(future, chunk, watch, sent))
            on_progress(len(done))

        try:
            for chunk in chunks(plan.pending, chunk_size):
                if len(queued) >= window:
                    collect_oldest()
                arguments = (plan.setup, chunk, target, settings, gpu_limit)
                future = render_chunk_task.delay(*arguments) if sent_away else render_chunk_task.submit(*arguments)
                queued.append((future, chunk, time.monotonic()))
            while queued:
                collect_oldest()
        except BaseException:
            stop.set()  # this process's chunks stop before their next batch...
            _stop_the_others([future for future, _chunk, _sent in queued], sent_away)
            raise
    return done


def _stop_the_others(futures: list[PrefectFuture[list[str]]], sent_away: bool) -> None:
    """After a chunk failed: wait for this process's other chunks to stop (its renderer closes next),
    or cancel the chunks sent away that no worker has started (the started ones stop by themselves
    once the run has ended)."""
    if not sent_away:
        for future in futures:
            future.wait()
        return
    with get_client(sync_client=True) as client:
        for future in futures:
            with suppress(Exception):  # best effort: the run's own error is the one to report
                state = client.read_task_run(future.task_run_id).state
                if state is None or not (state.is_final() or state.is_running()):
                    client.set_task_run_state(future.task_run_id, Cancelled(message="its run failed"), force=True)


def _lost_server(error: BaseException) -> bool:
    if isinstance(error, BaseExceptionGroup):  # Prefect's task groups wrap what their tasks raise
        return error.split(LOST_SERVER)[1] is None
    return isinstance(error, LOST_SERVER)


def serve_until_stopped(
    task_to_serve: Task, limit: int, retry_after_s: float = RECONNECT_AFTER_S, attempts: int | None = None
) -> None:
    """Serve ``task_to_serve`` until the process is stopped, connecting again whenever the server is lost.

    Prefect's task worker returns, as if it had been stopped, when its server does not answer its
    websocket handshake within 10 s, and raises when the handshake is refused: either way a render
    worker would end, silently, while the server and the runs it serves carry on without it. With
    ``attempts``, gives up after that many connections lost (OperationalError)."""
    lost = 0
    while True:
        try:
            serve(task_to_serve, limit=limit)
            why = "it did not answer"
        except BaseException as error:
            if not _lost_server(error):
                raise
            why = first_line(error)
        lost += 1
        if attempts is not None and lost >= attempts:
            raise OperationalError("Prefect server", None, "lost {count} times in a row: {why}", count=lost, why=why)
        log.warning("render worker: lost the Prefect server (%s); connecting again in %.0f s", why, retry_after_s)
        time.sleep(retry_after_s)


def main(argv: list[str] | None = None) -> int:
    """Serve render-chunk until stopped: one renderer (models, CPU workers) for the process's GPU."""
    parser = argparse.ArgumentParser(description="A render worker: renders chunks for render runs, models kept.")
    parser.add_argument("--cpu-workers", type=int, default=0, help="processes that finish pictures (0: automatic)")
    parser.add_argument("--compile", action="store_true", help="torch.compile each model (for long nightly runs)")
    args = parser.parse_args(argv)
    quiet_third_party_logs()
    # `kill -USR1 PID` writes every thread's stack to the worker's log: what a stuck worker waits on.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        with rendering_here(RenderSettings(cpu_workers=args.cpu_workers, compile=args.compile)):
            serve_until_stopped(render_chunk_task, CHUNKS_PER_DEVICE)
    except KeyboardInterrupt:  # Ctrl-C (make serve's too reaches it): a stop asked for, no traceback
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
