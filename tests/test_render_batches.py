"""Sending a run's batches to render workers: a few queued at a time, in order; a lost batch fails.

The task worker itself runs in tests/test_served.py; here the task's `.delay()` is replaced by a
recorder, so the queueing logic is checked without a server.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from prefect.exceptions import ObjectNotFound

import flows.render_batches as render_batches_module
from flows.render_batches import QUEUED_PER_WORKER, render_batches
from pipelines.jobs import RenderJob
from pipelines.render import RenderSettings, plan_render


class FakeBatch:
    """A batch a render worker has taken: it finishes when waited for (or was dropped)."""

    def __init__(self, jobs: list[RenderJob], dropped: bool, workers: FakeWorkers) -> None:
        self.jobs, self.dropped, self.workers = jobs, dropped, workers
        self.task_run_id = f"batch-{len(workers.sent)}"
        self.state = SimpleNamespace(is_final=lambda: True)

    def wait(self, timeout: float | None = None) -> None:
        if self.dropped:
            raise ObjectNotFound(http_exc=Exception("404"))

    def result(self) -> list[RenderJob]:
        self.workers.queued -= 1
        return self.jobs


class FakeWorkers:
    """Stands in for render_batch_task: records what is sent and how many wait at once."""

    def __init__(self, drop: int | None = None) -> None:
        self.sent: list[list[RenderJob]] = []
        self.queued = self.most_queued = 0
        self.drop = drop

    def delay(self, setup: object, jobs: list[RenderJob], *arguments: object) -> FakeBatch:
        batch = FakeBatch(jobs, dropped=len(self.sent) == self.drop, workers=self)
        self.sent.append(jobs)
        self.queued += 1
        self.most_queued = max(self.most_queued, self.queued)
        return batch


@pytest.fixture
def with_one_render_worker(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeWorkers]:
    def install(drop: int | None = None) -> FakeWorkers:
        workers = FakeWorkers(drop)
        monkeypatch.setattr(render_batches_module, "connected_render_workers", lambda: 1)
        monkeypatch.setattr(render_batches_module, "render_batch_task", workers)
        return workers

    return install


def test_batches_go_to_the_render_workers_a_few_at_a_time_in_order(
    make_campaign: Callable[..., Path], tmp_path: Path, with_one_render_worker: Callable[..., FakeWorkers]
) -> None:
    plan = plan_render(make_campaign(), tmp_path / "outputs")  # 2 communes x 2 formats
    workers = with_one_render_worker()
    progress: list[int] = []
    done = render_batches(plan, tmp_path, RenderSettings(batch_size=1), "run", "gpu", on_progress=progress.append)
    assert len(workers.sent) == 4
    assert done == [job for batch in workers.sent for job in batch]  # collected in the order sent
    assert sorted(job.key for job in done) == sorted(job.key for job in plan.pending)
    assert workers.most_queued == QUEUED_PER_WORKER
    assert progress == [1, 2, 3, 4]


def test_a_batch_a_worker_dropped_fails_the_run(
    make_campaign: Callable[..., Path], tmp_path: Path, with_one_render_worker: Callable[..., FakeWorkers]
) -> None:
    plan = plan_render(make_campaign(), tmp_path / "outputs")
    with_one_render_worker(drop=1)
    with pytest.raises(RuntimeError, match="dropped batch batch-1"):
        render_batches(plan, tmp_path, RenderSettings(batch_size=1), "run", "gpu", on_progress=lambda done: None)
