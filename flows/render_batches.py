"""A render run's batches: rendered in the run's own process, or by long-lived render workers.

    .venv/bin/python -m flows.render_batches     # a render worker; one per GPU (`make serve` starts them)

A process worker starts a new process for every flow run, and that process loads the model
again. A render worker is a Prefect task worker serving the `render-batch` task: it stays up
between runs and keeps its model loaded. A run that finds one connected sends its batches there
(`.delay()`) and waits for them; otherwise it renders them itself.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound
from prefect.futures import PrefectDistributedFuture
from prefect.task_worker import serve

from pipelines.export import ExportedFile
from pipelines.jobs import RenderJob, batches
from pipelines.render import RenderPlan, RenderSettings, RenderSetup, render_batch
from pipelines.third_party_logs import quiet_third_party_logs

log = logging.getLogger(__name__)

QUEUED_PER_WORKER = 2  # one batch rendering and one waiting, so no worker idles between batches
BATCH_TIMEOUT_S = 3600.0  # a worker that died mid-batch fails the run instead of hanging it
CHECK_EVERY_S = 30.0


# One task per batch, never per image or step: Prefect's per-task overhead stays small.
@task(name="render-batch", cache_policy=NO_CACHE, tags=["gpu"])
def render_batch_task(
    setup: RenderSetup,
    jobs: list[RenderJob],
    output_root: Path,
    settings: RenderSettings,
    run_id: str | None,
    gpu_limit: str | None,
) -> list[ExportedFile]:
    # The limit's name comes from the run: a render worker has no flow run of its own to ask.
    limit = concurrency(gpu_limit, occupy=1, strict=False) if gpu_limit else nullcontext()
    with limit:
        return render_batch(setup, jobs, output_root, settings, run_id=run_id)


def connected_render_workers() -> int:
    """How many render workers the API knows now (a temporary local server never has any)."""
    with get_client(sync_client=True) as client:
        response = client.request(
            "POST", "/task_workers/filter", json={"task_worker_filter": {"task_keys": [render_batch_task.task_key]}}
        )
    response.raise_for_status()
    return len(response.json())


def _batch_result(future: PrefectDistributedFuture[list[ExportedFile]]) -> list[ExportedFile]:
    """Wait for a batch sent to the render workers; a lost batch fails the run rather than hang it."""
    deadline = time.monotonic() + BATCH_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            future.wait(timeout=CHECK_EVERY_S)
            if future.state.is_final():
                return future.result()
        except ObjectNotFound:
            # A worker deletes a task run it cannot start (say, unreadable parameters): its log says why.
            raise RuntimeError(f"a render worker dropped batch {future.task_run_id}: see its log") from None
    raise TimeoutError(f"batch {future.task_run_id} did not finish within {BATCH_TIMEOUT_S:.0f} s")


def render_batches(
    plan: RenderPlan,
    output_root: Path,
    settings: RenderSettings,
    run_id: str | None,
    gpu_limit: str | None,
    on_progress: Callable[[int], None],
) -> list[ExportedFile]:
    """Render the plan's pending jobs batch by batch; ``on_progress`` gets the count done so far."""
    if not plan.pending:
        return []  # a quiet night: no question to the API either
    workers = connected_render_workers()
    arguments = (output_root, settings, run_id, gpu_limit)
    exported: list[ExportedFile] = []
    if not workers:
        for batch in batches(plan.pending, settings.batch_size):
            exported += render_batch_task(plan.setup, batch, *arguments)
            on_progress(len(exported))
        return exported

    log.info("sending the batches to %d render worker(s)", workers)
    queued: deque[PrefectDistributedFuture[list[ExportedFile]]] = deque()

    def collect_oldest() -> None:
        exported.extend(_batch_result(queued.popleft()))
        on_progress(len(exported))

    for batch in batches(plan.pending, settings.batch_size):
        if len(queued) >= QUEUED_PER_WORKER * workers:
            collect_oldest()
        queued.append(render_batch_task.delay(plan.setup, batch, *arguments))
    while queued:
        collect_oldest()
    return exported


def main() -> int:
    """Serve render-batch until stopped, one batch at a time: the process has its GPU to itself."""
    quiet_third_party_logs()
    serve(render_batch_task, limit=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
