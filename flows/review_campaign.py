"""The review-campaign flow: show a run's outputs, wait for a designer's decision, apply it.

It is its own flow run, started by render-campaign once rendering is over, so the render run
(and the GPU model it loaded) is gone while the review waits, for hours if need be. A deployed
review suspends while it waits: its process ends and its worker slot is free, and the answer
starts it again (each wait has its own key, so a run started again finds the answers it already
had and goes on from there). Run directly (no deployment, no worker), it pauses in its process.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from prefect.runtime import deployment, flow_run
from prefect.states import Failed
from pydantic import Field, ValidationError, create_model
from visuels._internal.i18n import words
from visuels._internal.logs import quiet_third_party_logs
from visuels.errors import ReviewError, Text
from visuels.flows.artifacts.contact_sheet import contact_sheet_markdown
from visuels.flows.failures import log_known_failures_in_one_line
from visuels.flows.forms import form_parameter
from visuels.flows.names import studio_url
from visuels.inputs.file_names import PathText
from visuels.inputs.yamlfiles import plain_message
from visuels.review.decisions import (
    ReviewDecision,
    ReviewOutcome,
    apply_review,
    campaign_folder,
    freeze_review,
    pictures_to_review,
    review_listing,
    short_id,
)

REVIEW_TIMEOUT = timedelta(days=3)  # a long weekend; after that the run fails and can be re-run
MAX_ANSWERS = 5  # a form answer that cannot be applied is asked again, this many times at most
MAX_CHOICES = 1000  # codes the Resume form offers to pick from, as many as the contact sheet names
REVIEW_FLOW = "review-campaign"
# The form's labels, which its refusals name too.
CAMPAIGN_FIELD = "Campaign folder"
BATCH_FIELD = "Pictures of render run (its id; empty: those awaiting a decision)"
# A review run in these states may still ask a designer about its pictures; one that ended (done,
# failed, timed out, cancelled, crashed) asks no more, and its undecided pictures await the next.
OPEN_STATES = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED, StateType.CANCELLING]
RUNS_PER_READ = 200  # the Prefect server's most flow runs per request


class ReviewForm(RunInput, ReviewDecision):
    """The form Prefect shows on the paused run (Resume button)."""


def review_form(short_ids: list[str]) -> type[ReviewForm]:
    """The form with ``rejected`` as a multi-select of this run's short ids: no path to type. Past
    ``MAX_CHOICES``, a list to type codes in (checked when the answer is applied): a region's
    100,000 choices would put a 1.3 MB form in Prefect's page."""
    choices = Literal[tuple(short_ids)] if len(short_ids) <= MAX_CHOICES else str  # type: ignore[valid-type]
    rejected = (
        list[choices],
        Field(default_factory=list, description="Files to reject (their codes, as in the contact sheet)."),
    )
    return create_model("ReviewForm", __base__=ReviewForm, rejected=rejected)


def wait_for_answer(form: type[ReviewForm], attempt: int) -> ReviewForm:
    """The designer's answer: a deployed run suspends for it (no process, no worker slot held)."""
    timeout, key = int(REVIEW_TIMEOUT.total_seconds()), f"review-answer-{attempt}"
    if deployment.id:
        return suspend_flow_run(wait_for_input=form, timeout=timeout, key=key)
    return pause_flow_run(wait_for_input=form, timeout=timeout, key=key)


def studio_link(run_id: str) -> str:
    """Where the studio shows this review run as a grid of pictures."""
    return studio_url(f"review/{run_id}")


def open_reviews(campaign_slug: str, output_root: Path, but: str | None = None) -> tuple[set[str], set[str]]:
    """What the campaign's review runs that may still ask a designer (``but`` that one) ask about:
    the ids their pictures are frozen under, and the job keys of those started with keys."""
    batches: set[str] = set()
    keys: set[str] = set()
    state = FlowRunFilterState(type=FlowRunFilterStateType(any_=OPEN_STATES))
    offset = 0
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[REVIEW_FLOW])),
                flow_run_filter=FlowRunFilter(state=state),
                limit=RUNS_PER_READ,
                offset=offset,
            )
            for run in runs:
                asks = run.parameters
                same_folder = Path(asks.get("output_dir", "outputs")).resolve() == output_root
                if str(run.id) != but and asks.get("campaign_slug") == campaign_slug and same_folder:
                    keys.update(asks.get("keys") or [])
                    batches.add(asks.get("batch") or str(run.id))
            if len(runs) < RUNS_PER_READ:  # the last page
                return batches, keys
            offset += RUNS_PER_READ


def _pictures(campaign_slug: str, batch: str, keys: list[str] | None, output_root: Path, run_id: str) -> list[str]:
    """The job keys this review asks about: those it was started with, those the render run froze
    under ``batch``, or (started by hand with neither) the campaign's pictures awaiting a decision
    that no other open review asks about, frozen under this run's id when it first starts."""
    # Resumed after a suspension, a review started by hand finds what it froze: Prefect is not asked again.
    pictures = pictures_to_review(output_root, batch or run_id, keys or [])
    if not (pictures or keys or batch):
        pictures = freeze_review(
            output_root, campaign_slug, run_id, None, *open_reviews(campaign_slug, output_root, run_id)
        )
    if not pictures:
        where, field = output_root / campaign_slug, Text(BATCH_FIELD if batch else CAMPAIGN_FIELD)
        raise ReviewError(where, field, "no picture to review: every one has a decision, or another review asks")
    return pictures


@flow(name=REVIEW_FLOW)
def review_campaign(
    campaign_slug: Annotated[str, form_parameter(CAMPAIGN_FIELD)],
    batch: Annotated[str, form_parameter(BATCH_FIELD)] = "",
    keys: Annotated[list[str] | None, form_parameter("Pictures (job keys)")] = None,
    output_dir: Annotated[PathText, form_parameter("Output folder")] = "outputs",
    language: Annotated[Literal["fr", "en"], form_parameter("Language")] = "en",
) -> ReviewOutcome:
    """Ask a designer to approve a campaign's files, then publish them and record the decisions.

    Args:
        campaign_slug: The campaign's folder name under the output folder.
        batch: The render run whose pictures to review: the id they were recorded under when it
            asked for review. Empty: every picture of the campaign awaiting a decision that no
            other open review asks about.
        keys: Job keys of the files to review, instead (scripts).
        output_dir: The render run's output folder.
        language: Of the contact sheet and the form's words: the campaign's.
    """
    quiet_third_party_logs()
    log_known_failures_in_one_line()
    logger = get_run_logger()
    output_root = Path(output_dir).resolve()
    run_id = flow_run.get_id()
    try:
        campaign_slug = campaign_folder(output_root, campaign_slug, Text(CAMPAIGN_FIELD))
        keys = _pictures(campaign_slug, batch, keys, output_root, run_id)
    except ReviewError as exc:  # the run fails with the one line, in the designer's words, no traceback
        return Failed(message=exc.said(words(language)), data=exc)
    listing = review_listing(output_root, campaign_slug, keys)
    t = words(language)
    create_markdown_artifact(
        key=f"review-{campaign_slug}",
        markdown=contact_sheet_markdown(t("Review: {campaign}", campaign=campaign_slug), output_root, listing, t),
        description=t("Files awaiting review; resume the run to approve or reject them."),
    )
    form_class = review_form(sorted(short_id(key) for key in keys))
    problem, previous = "", {}
    for attempt in range(MAX_ANSWERS):
        description = t(
            "{files} of **{campaign}** to review, as pictures in the studio: [{link}]({link})"
            " (`visuels studio`).\n\nOr here: pick the files to reject by their code (see the contact sheet"
            " artifact) and say why; every other file is approved. Submit with nothing picked to approve them all.",
            files=t.plural("1 file", "{count} files", len(listing)),
            campaign=campaign_slug,
            link=studio_link(run_id),
        )
        if problem:
            description = t("**Previous answer refused: {problem}**", problem=problem) + f"\n\n{description}"
        # A refused answer comes back filled in as it was sent, to be corrected rather than retyped.
        form = form_class.with_initial_data(description=description, **previous)
        try:
            # The form's own checks (a comment with every rejection...) run when it is loaded here.
            answer = wait_for_answer(form, attempt)
            previous = answer.model_dump(include=set(ReviewDecision.model_fields))
            return apply_review(output_root, campaign_slug, keys, ReviewDecision(**previous), run_id=run_id)
        except ValidationError as exc:
            first = exc.errors()[0]
            problem = plain_message(first).said(t)
            if isinstance(first.get("input"), dict):
                fields = ReviewDecision.model_fields
                previous = {name: value for name, value in first["input"].items() if name in fields}
        except ReviewError as exc:
            problem = exc.said(t)
        logger.warning("review answer refused: %s", problem)
    refused = ReviewError(
        campaign_slug,
        "review",
        "no applicable answer after {tries} tries: {problem}",
        tries=MAX_ANSWERS,
        problem=problem,
    )
    return Failed(message=refused.said(t), data=refused)
