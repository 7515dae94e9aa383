"""The studio's window on Prefect: paused review-campaign runs, and resuming one with a decision."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound
from prefect.flow_runs import resume_flow_run
from prefect.settings import PREFECT_API_URL, temporary_settings
from visuels.flows.review_campaign import REVIEW_FLOW
from visuels.review.decisions import ReviewDecision
from visuels.studio.reviews import ReviewRun


def _review_run(run: FlowRun) -> ReviewRun:
    parameters = run.parameters
    return ReviewRun(
        id=str(run.id),
        name=run.name,
        campaign_slug=parameters.get("campaign_slug", ""),
        batch=parameters.get("batch") or str(run.id),  # one started by hand froze its own pictures
        keys=list(parameters.get("keys") or []),
        output_dir=str(parameters.get("output_dir", "outputs")),
        paused=bool(run.state and run.state.is_paused()),
        state=run.state.name if run.state else "unknown",
    )


class PrefectReviews:
    """Reads and answers review runs on the server ``api_url`` (None: the one ``PREFECT_API_URL`` names)."""

    def __init__(self, api_url: str | None = None) -> None:
        self.api_url = api_url

    def _on_server(self) -> AbstractContextManager:
        """Prefect's settings for this server (they are read once, at import: set here, not in os.environ)."""
        return temporary_settings({PREFECT_API_URL: self.api_url}) if self.api_url else nullcontext()

    def paused_runs(self) -> list[ReviewRun]:
        with self._on_server(), get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[REVIEW_FLOW])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                ),
                sort=FlowRunSort.START_TIME_DESC,
                limit=50,
            )
        return [_review_run(run) for run in runs]

    def run(self, run_id: str) -> ReviewRun | None:
        try:
            with self._on_server(), get_client(sync_client=True) as client:
                return _review_run(client.read_flow_run(UUID(run_id)))
        except (ObjectNotFound, ValueError):
            return None

    def resume(self, run_id: str, decision: ReviewDecision) -> None:
        with self._on_server():
            resume_flow_run(UUID(run_id), run_input=decision.model_dump(mode="json"))
