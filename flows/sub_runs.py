"""Waiting for flow runs started with ``run_deployment(..., timeout=0)``."""

from __future__ import annotations

import time
from collections.abc import Callable
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun

POLL_SECONDS = 2.0


def wait_for_runs(run_ids: list[UUID], on_finished: Callable[[int], None] | None = None) -> list[FlowRun]:
    """Poll until every run is in a final state; return them in the order given."""
    finished: dict[UUID, FlowRun] = {}
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
            if len(finished) < len(run_ids):
                time.sleep(POLL_SECONDS)
    return [finished[run_id] for run_id in run_ids]
