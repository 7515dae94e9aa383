"""The CPU stage's pool of worker processes: one broken pool is replaced once, a closed stage takes
no more work, and no worker or fork server outlives the process that made the pool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from visuels._internal.liveness import is_gone
from visuels.engine.cpu_stage import CpuStage, CpuStageClosedError


class FakePool:
    def __init__(self, name: str) -> None:
        self.name = name
        self.shut_down = False

    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        self.shut_down = True


def test_a_thread_recovering_late_from_a_broken_pool_leaves_the_fresh_one_alone() -> None:
    """Two threads met the same broken pool (a worker died); the first replaced it. The second must
    not shut down the pool the first just made: its pictures would fail for nothing."""
    stage = CpuStage(workers=1)
    broken = FakePool("broken")
    stage._pool = broken  # type: ignore[assignment]
    stage._drop_pool(broken, wait=False)  # thread A drops it...
    fresh = FakePool("fresh")
    stage._pool = fresh  # type: ignore[assignment]  # ...and makes a fresh one
    stage._drop_pool(broken, wait=False)  # thread B, still holding the broken one, drops "it"
    assert broken.shut_down and not fresh.shut_down and stage._pool is fresh
    stage._pool = None


def test_a_closed_stage_takes_no_more_pictures() -> None:
    for workers in (0, 1):
        stage = CpuStage(workers)
        stage.close()
        with pytest.raises(CpuStageClosedError):
            stage.submit(None, None, None)  # type: ignore[arg-type]


OWNER = textwrap.dedent(
    """
    import multiprocessing.forkserver, multiprocessing.resource_tracker, os, sys, time
    from visuels.engine.cpu_stage import CpuStage

    stage = CpuStage(2)
    pool = stage._executor()
    workers = sorted({pool.submit(os.getpid).result() for _ in range(8)})
    forkserver = multiprocessing.forkserver._forkserver._forkserver_pid
    tracker = multiprocessing.resource_tracker._resource_tracker._pid
    print(" ".join(str(pid) for pid in [forkserver, tracker, *workers]), flush=True)
    if sys.argv[1] == "close":
        stage.close()
        print("closed", flush=True)
    time.sleep(600)
    """
)


def _wait_gone(pids: list[int], within_s: float) -> list[int]:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if not is_gone(pid)]
        if not alive:
            return []
        time.sleep(0.2)
    return alive


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_killed_owner_leaves_no_worker_no_fork_server_and_no_tracker_behind() -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER, "kill"], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    assert owner.stdout is not None
    pids = [int(pid) for pid in owner.stdout.readline().split()]
    assert len(pids) >= 3 and not any(is_gone(pid) for pid in pids)
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait()
    assert _wait_gone(pids, within_s=15) == []


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_closing_the_stage_stops_its_workers_and_the_fork_server() -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER, "close"], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    assert owner.stdout is not None
    forkserver, _tracker, *workers = [int(pid) for pid in owner.stdout.readline().split()]
    assert owner.stdout.readline().strip() == "closed"
    try:
        assert _wait_gone([forkserver, *workers], within_s=15) == []
    finally:
        owner.kill()
        owner.wait()


def test_submitting_from_several_threads_while_closing_never_revives_the_pool() -> None:
    stage = CpuStage(workers=1)
    stage.close()
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            stage._executor()
        except CpuStageClosedError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 4 and stage._pool is None
