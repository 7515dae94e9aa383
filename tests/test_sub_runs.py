"""Waiting for sub-runs ends: with their final states, or after the limit, naming those still going."""

from __future__ import annotations

from types import SimpleNamespace
from uuid import uuid4

import pytest
import visuels.flows.sub_runs
from visuels.flows.sub_runs import wait_for_runs


class FakeClient:
    """Runs whose state never ends, but for those named final."""

    def __init__(self, final: set) -> None:
        self.final = final

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read_flow_run(self, run_id):
        state = SimpleNamespace(is_final=lambda: run_id in self.final)
        return SimpleNamespace(id=run_id, name=f"run-{str(run_id)[:4]}", state=state)


def test_a_run_that_never_ends_fails_the_wait_after_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    done, stuck = uuid4(), uuid4()
    monkeypatch.setattr(visuels.flows.sub_runs, "get_client", lambda sync_client: FakeClient({done}))
    monkeypatch.setattr(visuels.flows.sub_runs, "POLL_SECONDS", 0.01)
    seen: list[int] = []
    with pytest.raises(TimeoutError, match=rf"1 run still not finished after 0 h: run-{str(stuck)[:4]}"):
        wait_for_runs([done, stuck], on_finished=seen.append, limit_s=0.1)
    assert seen == [1]  # the one that ended was counted
    monkeypatch.setattr(visuels.flows.sub_runs, "get_client", lambda sync_client: FakeClient({done, stuck}))
    assert [run.id for run in wait_for_runs([stuck, done], limit_s=0.1)] == [stuck, done]
