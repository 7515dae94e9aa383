"""Publishing a render: the campaign's record exported as manifest.json, its reports, the approved
folder in line with the record, and a signed checkpoint of the ledger."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel
from visuels.errors import VisuelsError
from visuels.inputs.charter import load_charter
from visuels.marking.checkpoints import write_checkpoint
from visuels.marking.keys import signing_files
from visuels.planning.jobs import RenderJob
from visuels.planning.plan import RenderPlan
from visuels.postprocess.coherence import StyleBaseline, StyleSignature, fix_baseline
from visuels.record import manifest
from visuels.record.database import Database, database_url, is_missing
from visuels.review.decisions import sync_approved
from visuels.review.report import Reports, write_reports

WRITTEN_AT_MOST = 3  # times a run publishes the campaign over pictures another run records meanwhile


def finish_render(plan: RenderPlan, output_root: Path) -> Reports:
    """Export the campaign's record as manifest.json, report on every output of the plan, and sign a
    checkpoint of the ledger as it now is; the approved folder is put in line with the record.

    Another run of the campaign (another machine) may record its last pictures and publish them
    while this one writes: its files replaced by this run's, read before, would leave them out.
    So where the record moved meanwhile, everything is written again from it."""
    charter = load_charter(plan.setup.charter_path)
    database = Database(database_url(output_root))
    try:
        for _ in range(WRITTEN_AT_MOST):
            read_at = manifest.campaign_state(database, plan.campaign_slug)
            sync_approved(database, output_root, plan.campaign_slug)
            write_checkpoint(database, output_root, signing_files())
            reports = write_reports(database, output_root, plan, charter)
            # Last: an up-to-date manifest.json says the rest was written too (publish_if_behind).
            manifest.write_manifest_json(
                database, output_root, plan.campaign_slug, plan.campaign_name, set(plan.campaign_keys)
            )
            if manifest.campaign_state(database, plan.campaign_slug) == read_at:
                break  # else still rendering elsewhere: its own end publishes what it adds after the last try
        return reports
    finally:
        database.close()


def publish_what_is_done(plan: RenderPlan, output_root: Path) -> None:
    """``finish_render`` after a run failed: the files it finished are listed and reported. A run
    that failed before its first file (a LoRA for another model), where the campaign had none,
    writes no report of nothing."""
    url = database_url(output_root)
    if is_missing(url):
        return
    if not manifest.manifest_path(output_root, plan.campaign_slug).exists():
        database = Database(url)
        try:
            if not manifest.recorded_files(database, plan.campaign_slug):
                return
        finally:
            database.close()
    finish_render(plan, output_root)


def publish_if_behind(plan: RenderPlan, output_root: Path) -> Reports | None:
    """``finish_render`` for a run with nothing to render, when the campaign's manifest.json is not
    what its record and this plan say (a run killed after its last file, a trial on another model
    since): the reports and manifest follow the campaign as it is planned now. None: they did already."""
    url = database_url(output_root)
    if is_missing(url):
        return None  # nothing was ever recorded here: nothing to publish
    database = Database(url)
    try:
        current = set(plan.campaign_keys)
        if manifest.manifest_is_up_to_date(database, output_root, plan.campaign_slug, plan.campaign_name, current):
            return None
    finally:
        database.close()
    return finish_render(plan, output_root)


def fix_campaign_baseline(plan: RenderPlan, output_root: Path) -> tuple[StyleBaseline, Reports]:
    """The designer fixes the campaign's style baseline again, from the recorded pictures of the
    plan's selection (its communes, formats, audiences); the reports are written against it."""
    database = Database(database_url(output_root))
    try:
        recorded = manifest.entries(database, plan.campaign_slug)
    finally:
        database.close()
    signatures = [
        StyleSignature.model_validate(recorded[job.key]["compliance"]["style"])
        for job in plan.jobs
        if job.key in recorded and recorded[job.key]["compliance"].get("style")
    ]
    if not signatures:
        raise VisuelsError(
            output_root / plan.campaign_slug, None, "no recorded picture of this selection: render it first"
        )
    baseline = fix_baseline(output_root / plan.campaign_slug, signatures)
    return baseline, finish_render(plan, output_root)


class RenderSummary(BaseModel):
    """What a render run did, for the CLI and the flow's result."""

    campaign: str
    output_dir: Path
    manifest: Path | None
    report: Path | None
    jobs: int
    rendered: int
    failed_compliance: int
    files: list[str]
    job_keys: list[str]
    review: str | None = None  # the review run waiting for a designer's approval, by name
    review_not_sent: bool = False  # it asked for one, but no server it reached could start it
    review_earlier: int = 0  # of the pictures the review asks about, those earlier runs exported


def summarise(plan: RenderPlan, rendered: list[RenderJob], output_root: Path, reports: Reports) -> RenderSummary:
    return RenderSummary(
        campaign=plan.campaign_slug,
        output_dir=output_root / plan.campaign_slug,
        manifest=manifest.manifest_path(output_root, plan.campaign_slug) if reports.rows else None,
        report=reports.html if reports.rows else None,
        jobs=len(plan.jobs),
        rendered=len(rendered),
        failed_compliance=reports.failed,
        files=[job.relative_path for job in rendered],
        job_keys=[job.key for job in rendered],
    )
