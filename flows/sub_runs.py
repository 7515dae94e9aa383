"""Waiting for flow runs started with ``run_deployment(..., timeout=0)``."""

from __future__ import annotations

import time
from collections.abc import Callable
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from visuels._internal.i18n import counted

POLL_SECONDS = 2.0
# A campaign's run or shard not ended after a night and a half is stuck, not slow: the waiting
# run fails, naming it, instead of waiting for ever.
WAIT_LIMIT_S = 12 * 3600.0


def wait_for_runs(
    run_ids: list[UUID], on_finished: Callable[[int], None] | None = None, limit_s: float = WAIT_LIMIT_S
) -> list[FlowRun]:
    """Poll until every run is in a final state (a crashed one is); return them in the order given."""
    finished: dict[UUID, FlowRun] = {}
    deadline = time.monotonic() + limit_s
    with get_client(sync_client=True) as client:
        while len(finished) < len(run_ids):
            for run_id in run_ids:
                if run_id in finished:
                    continue
                run = client.read_flow_run(run_id)
                if run.state is not None and run.state.is_final():
                    finished[run_id] = run
                    if on_finished is not None:
                        on_finished(len(finished))
            if len(finished) == len(run_ids):
                break
            if time.monotonic() > deadline:
                waiting = [client.read_flow_run(run_id).name for run_id in run_ids if run_id not in finished]
                hours = f"{limit_s / 3600:.0f} h"
                raise TimeoutError(
                    f"{counted(len(waiting), 'run')} still not finished after {hours}: {', '.join(waiting)}"
                )
            time.sleep(POLL_SECONDS)
    return [finished[run_id] for run_id in run_ids]
