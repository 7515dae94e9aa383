"""What the studio needs from the orchestrator to show and answer paused review runs.

The Prefect implementation lives in ``visuels.flows.studio_reviews`` (this package never imports
Prefect); the studio works without one, for retouching on a laptop.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel
from visuels.review.decisions import ReviewDecision


class ReviewRun(BaseModel):
    """A review-campaign run and what it asks about."""

    id: str
    name: str
    campaign_slug: str
    batch: str = ""  # the id its pictures are frozen under in the record
    keys: list[str] = []  # or the job keys it was started with
    output_dir: str
    paused: bool
    state: str


class ReviewBackend(Protocol):
    def paused_runs(self) -> list[ReviewRun]:
        """Review runs waiting for a decision, newest first."""
        ...

    def run(self, run_id: str) -> ReviewRun | None: ...

    def resume(self, run_id: str, decision: ReviewDecision) -> None:
        """Send the decision as the run's input: the same ``RunInput`` its Resume form sends."""
        ...
