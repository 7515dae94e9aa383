"""The studio's window on Prefect: paused review-campaign runs, and resuming one with a decision."""

from __future__ import annotations

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
from visuels.review.decisions import ReviewDecision
from visuels.studio.reviews import ReviewRun

REVIEW_FLOW = "review-campaign"


def _review_run(run: FlowRun) -> ReviewRun:
    parameters = run.parameters
    return ReviewRun(
        id=str(run.id),
        name=run.name,
        campaign_slug=parameters.get("campaign_slug", ""),
        keys=list(parameters.get("keys", [])),
        output_dir=str(parameters.get("output_dir", "outputs")),
        paused=bool(run.state and run.state.is_paused()),
        state=run.state.name if run.state else "unknown",
    )


class PrefectReviews:
    """Reads and answers review runs on the server ``PREFECT_API_URL`` names."""

    def paused_runs(self) -> list[ReviewRun]:
        with get_client(sync_client=True) as client:
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
            with get_client(sync_client=True) as client:
                return _review_run(client.read_flow_run(UUID(run_id)))
        except (ObjectNotFound, ValueError):
            return None

    def resume(self, run_id: str, decision: ReviewDecision) -> None:
        resume_flow_run(UUID(run_id), run_input=decision.model_dump(mode="json"))
