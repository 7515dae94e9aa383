"""The render-campaign flow: plan, render batch by batch (or in shards), report, ask for review."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote

from prefect import flow, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.runtime import deployment, flow_run
from prefect.states import Failed, State
from visuels._internal.i18n import counted, language_of, words
from visuels._internal.logs import quiet_third_party_logs
from visuels.engine.run import export_target, rendered_since_plan
from visuels.errors import VisuelsError
from visuels.flows.artifacts.contact_sheet import contact_sheet_markdown
from visuels.flows.failures import log_known_failures_in_one_line
from visuels.flows.forms import form_group, form_parameter
from visuels.flows.names import GPU_LIMIT, SHARDS_QUEUE, studio_url
from visuels.flows.progress import RunProgress
from visuels.flows.render_batches import render_batches
from visuels.flows.review_campaign import open_reviews, studio_link
from visuels.flows.sub_runs import wait_for_runs
from visuels.planning.jobs import RenderJob, shard_by_commune
from visuels.planning.plan import RenderPlan, plan_render
from visuels.planning.request import CampaignPath, Overrides, RenderSettings, RunSettings, Selection
from visuels.review.decisions import freeze_review, review_listing, unfreeze_review
from visuels.review.publish import RenderSummary, finish_render, publish_what_is_done, summarise
from visuels.review.report import Reports

log = logging.getLogger(__name__)

REVIEW_DEPLOYMENT = "review-campaign/review-campaign"
ReviewChoice = Literal["as the campaign says", "yes", "no"]
EVERYTHING = Selection()  # frozen models: safe as shared defaults
NO_OVERRIDES = Overrides()
DEFAULT_RUN = RunSettings()


@task(name="plan-campaign", cache_policy=NO_CACHE)
def plan_campaign(
    campaign: str, output_root: Path, selection: Selection, overrides: Overrides, settings: RenderSettings
) -> RenderPlan | State:
    try:
        return plan_render(campaign, output_root, selection, overrides, settings)
    except VisuelsError as exc:
        # Bad input: the run fails with the one-line message, and no traceback fills the logs.
        return Failed(message=str(exc), data=exc)


@task(name="report", cache_policy=NO_CACHE)
def report(plan: RenderPlan, output_root: Path) -> Reports:
    reports = finish_render(plan, output_root)
    t = words(plan.language)
    name = plan.campaign_name
    if reports.rows:
        held = t.plural(
            "; 1 held back for its prompt or texts (see the report)",
            "; {count} held back for their prompt or texts (see the report)",
            len(plan.held),
        )
        if len(reports.table) == len(reports.rows):
            described = t("Charter compliance of {campaign}, every picture of the campaign", campaign=name)
        else:
            described = t(
                "Charter compliance of {campaign}: the {shown} of its {total} pictures to review first"
                " (every picture in the report and report.csv)",
                campaign=name,
                shown=len(reports.table),
                total=len(reports.rows),
            )
        create_table_artifact(
            key=f"compliance-{plan.campaign_slug}",
            table=reports.table,
            description=described + (held if plan.held else ""),
        )
        # Over http, through the studio (browsers refuse file:// links from a web page).
        relative = reports.html.relative_to(output_root).as_posix()
        create_link_artifact(
            key=f"report-{plan.campaign_slug}",
            link=studio_url(f"files/{quote(relative)}"),
            link_text=t("{campaign}: compliance report (served by the studio: make studio)", campaign=name),
        )
    return reports


def _render_unsharded(plan: RenderPlan, output_root: Path, settings: RenderSettings) -> tuple[list[RenderJob], Reports]:
    """This run's chunks, rendered by the render workers if any are connected, else in this process."""
    t = words(plan.language)
    progress = RunProgress(plan.campaign_name, len(plan.pending), t("pictures"), t)
    try:
        keys = set(
            render_batches(
                plan,
                export_target(plan, output_root, run_id=flow_run.get_id()),
                settings,
                gpu_limit=GPU_LIMIT if deployment.id else None,  # the CLI's temporary server has no such limit
                on_progress=progress.update,
            )
        )
    except Exception:
        _export_what_is_done(plan, output_root)
        raise
    return [job for job in plan.pending if job.key in keys], report(plan, output_root)


def _export_what_is_done(plan: RenderPlan, output_root: Path) -> None:
    """A run that fails (a full disk, a bad picture) still lists and reports the files it finished:
    they are recorded already; manifest.json and the report show them too. What fails here (the
    same full disk) is logged: the run's own error is the one to report."""
    try:
        publish_what_is_done(plan, output_root)
    except VisuelsError as exc:
        log.warning("could not list the files finished before the failure: %s", exc)


def _render_in_shards(
    plan: RenderPlan, shards: list[list[str]], parameters: dict, output_root: Path
) -> tuple[list[RenderJob], Reports]:
    """Start one sub-run of this deployment per shard, for any free worker, and wait for all."""
    t = words(plan.language)
    title = t("{campaign}: {count} pictures in shards", campaign=plan.campaign_name, count=len(plan.pending))
    progress = RunProgress(title, len(shards), t("shards"), t)
    runs = []
    for number, communes in enumerate(shards, start=1):
        selection = parameters["selection"] | {"communes": communes, "max_communes": None}
        runs.append(
            run_deployment(
                name=f"render-campaign/{deployment.name}",
                parameters={**parameters, "selection": selection, "review": "no"},
                flow_run_name=f"{flow_run.name}-shard-{number}",
                work_queue_name=SHARDS_QUEUE,  # slots this run, waiting, does not hold
                timeout=0,  # start them all now; wait below
            )
        )
    finished = wait_for_runs([run.id for run in runs], on_finished=progress.update)
    failed = [run.name for run in finished if not (run.state and run.state.is_completed())]
    if failed:
        raise RuntimeError(f"{counted(len(failed), 'shard')} did not complete: {', '.join(failed)}")
    return rendered_since_plan(plan, output_root), report(plan, output_root)


def _ask_for_review(plan: RenderPlan, rendered: list[RenderJob], output_root: Path) -> dict[str, str | int | bool]:
    """Start the review run that waits for a designer's approval: of what this run rendered, and of
    the pictures of its plan that earlier runs exported and no review asks about yet (a run killed
    before it asked, a run with review off, a review that ran out of time). What the summary says
    of it: its name (none: nothing to review, or no review deployment to start), whether it could
    not be sent, how many of its pictures earlier runs exported."""
    render_id = str(flow_run.get_id())
    among = [job.key for job in plan.jobs]
    keys = freeze_review(
        output_root, plan.campaign_slug, render_id, among, *open_reviews(plan.campaign_slug, output_root)
    )
    if not keys:
        log.info("every picture of %s has a decision or a review waiting for one", plan.campaign_slug)
        return {}
    t = words(plan.language)
    name = plan.campaign_name
    listing = review_listing(output_root, plan.campaign_slug, keys)
    create_markdown_artifact(
        key=f"contact-sheet-{plan.campaign_slug}",
        markdown=contact_sheet_markdown(t("{campaign}: rendered", campaign=name), output_root, listing, t),
    )
    try:
        review = run_deployment(
            name=REVIEW_DEPLOYMENT,
            parameters={
                "campaign_slug": plan.campaign_slug,
                "batch": render_id,  # its pictures, frozen in the record: not 100,000 keys in Prefect
                "output_dir": str(output_root),
                "language": language_of(plan.language),
            },
            flow_run_name=f"review-{flow_run.name}",
            timeout=0,
            as_subflow=False,  # its own run: this one ends, and its model with it
            idempotency_key=f"review-{render_id}",  # this run started again: the same review
        )
    except ObjectNotFound:
        log.warning("no %s deployment: files are rendered but not sent for review", REVIEW_DEPLOYMENT)
        unfreeze_review(output_root, render_id)  # a command-line render every night: no rows for nothing
        return {"review_not_sent": True}
    earlier = len(set(keys).difference(job.key for job in rendered))
    log.info(
        "review waiting in flow run %s (%s): %d pictures, %d of earlier runs",
        review.name,
        review.id,
        len(keys),
        earlier,
    )
    create_link_artifact(
        key=f"studio-review-{plan.campaign_slug}",
        link=studio_link(str(review.id)),
        link_text=t("{campaign}: review the pictures in the studio (`visuels studio`)", campaign=name),
    )
    return {"review": review.name, "review_earlier": earlier}


def waits_for_review(choice: ReviewChoice, campaign_says: bool) -> bool:
    """Whether a run asks for review: as its campaign's ``review:`` says, unless the run form said."""
    return campaign_says if choice == "as the campaign says" else choice == "yes"


@flow(name="render-campaign")
def render_campaign(
    campaign: CampaignPath,
    selection: Annotated[Selection, *form_group("Which pictures", EVERYTHING)] = EVERYTHING,
    overrides: Annotated[Overrides, *form_group("Change for this run", NO_OVERRIDES)] = NO_OVERRIDES,
    review: Annotated[ReviewChoice, form_parameter("Send for review")] = "as the campaign says",
    run: Annotated[RunSettings, *form_group("Technical settings", DEFAULT_RUN)] = DEFAULT_RUN,
) -> RenderSummary:
    """Render a campaign's visuals for its communes, audiences and formats.

    Args:
        campaign: The campaign file, in the project's campaigns/ folder.
        selection: Only some communes, audiences or formats of the campaign. Empty: all of them.
        overrides: Model, steps, seed or charter style strength for this run instead of the
            campaign's. Empty: the campaign's.
        review: Afterwards, wait for a designer to approve the pictures (in the studio, or here
            with Resume): as the campaign file says (its `review:`), or yes or no for this run.
        run: Where the files go and how the machine runs the model: the defaults suit most runs.
    """
    quiet_third_party_logs()
    log_known_failures_in_one_line()
    output_root = Path(run.output_dir).resolve()
    planned = plan_campaign(campaign, output_root, selection, overrides, run, return_state=True)
    if planned.is_failed():  # the run ends failed with the input error's one line
        return Failed(message=planned.message, data=planned.result(raise_on_failure=False))
    plan = planned.result()
    shards = shard_by_commune(plan.pending, run.shard_size) if run.shard_size else []
    try:
        if len(shards) > 1 and deployment.name:
            parameters = {
                "campaign": campaign,
                "selection": selection.model_dump(mode="json"),
                "overrides": overrides.model_dump(mode="json"),
                "run": run.model_dump(mode="json") | {"output_dir": str(output_root), "shard_size": 0},
            }
            rendered, reports = _render_in_shards(plan, shards, parameters, output_root)
        else:
            rendered, reports = _render_unsharded(plan, output_root, run)
    except VisuelsError as exc:  # a full disk, a picture the model blacked out: one line, as for bad input
        return Failed(message=str(exc), data=exc)
    asked = _ask_for_review(plan, rendered, output_root) if waits_for_review(review, plan.review) else {}
    return summarise(plan, rendered, output_root, reports).model_copy(update=asked)
