"""Planning and rendering a campaign: the functions the flows, the CLI and the render workers share.

``plan_render`` expands a campaign into jobs and leaves out those the record says are done;
``render_jobs`` sends jobs through a process's ``Renderer`` (GPU stage, then CPU workers that
record each file as it is written); ``finish_render`` exports ``manifest.json`` and the reports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from pipelines import manifest, model_sources
from pipelines.atomic import remove_leftover_temporaries
from pipelines.campaign import Campaign, CommuneSelection, load_campaign, select_communes
from pipelines.charter import load_charter
from pipelines.claims import JobClaims
from pipelines.cpu_stage import ExportTarget
from pipelines.database import Database, database_url, is_missing
from pipelines.devices import DtypeName, default_batch_size
from pipelines.errors import CampaignError, VisuelsError
from pipelines.export import ExportedFile
from pipelines.jobs import RenderJob, expand_jobs
from pipelines.marking import watermark
from pipelines.marking.checkpoints import write_checkpoint
from pipelines.marking.keys import signing_files
from pipelines.model_reference import LoraWeights, ModelRef, describe_model, parse_model_option
from pipelines.render_request import Overrides, RenderSettings, Selection
from pipelines.report import Reports, write_reports
from pipelines.review import sync_approved

if TYPE_CHECKING:  # the renderer imports the model libraries: planning does not need them
    from pipelines.renderer import Renderer

log = logging.getLogger(__name__)


class RenderSetup(BaseModel):
    """What every batch of a plan shares: the charter and the model with its LoRA and precision."""

    model_config = ConfigDict(frozen=True)

    charter_path: Path
    model: ModelRef
    model_description: str
    precision: DtypeName  # as asked: the machine that renders resolves "auto" (pipelines.devices)
    lora: LoraWeights | None


class RenderPlan(BaseModel):
    """A campaign expanded into jobs, with those still to render."""

    model_config = ConfigDict(frozen=True)

    campaign_name: str
    campaign_slug: str
    setup: RenderSetup
    jobs: list[RenderJob]
    pending: list[RenderJob]
    campaign_keys: list[str] = Field(
        default_factory=list, description="Keys of the whole campaign, selection or not: what its report covers."
    )
    held: list[RenderJob] = Field(
        default_factory=list,
        description="Jobs not rendered: a banned term, or a sensitive one the campaign holds back.",
    )
    language: str = Field(default="fr", description="The campaign's first language: its report's.")


def _select(campaign: Campaign, selection: Selection) -> Campaign:
    """Narrow the campaign to the selection; an unknown name is an error, never silently dropped."""
    spec = campaign.spec
    communes = campaign.communes
    if selection.communes:
        names = CommuneSelection(file="", names=selection.communes)
        communes = select_communes(names, communes, campaign.path, "selection.communes")
    if selection.max_communes is not None:
        communes = communes[: selection.max_communes]
    for field, wanted, available in (
        ("selection.audiences", selection.audiences, list(spec.audiences)),
        ("selection.formats", selection.formats, spec.formats),
    ):
        unknown = [name for name in wanted if name not in available]
        if unknown:
            known = ", ".join(available)
            raise CampaignError(campaign.path, field, f"'{unknown[0]}' is not in this campaign ({known})")
    audiences = {name: words for name, words in spec.audiences.items() if name in selection.audiences}
    formats = [name for name in spec.formats if name in selection.formats]
    spec = spec.model_copy(update={"audiences": audiences or spec.audiences, "formats": formats or spec.formats})
    return campaign.model_copy(update={"spec": spec, "communes": communes})


def _override(campaign: Campaign, overrides: Overrides) -> Campaign:
    spec = campaign.spec
    update: dict = {}
    if overrides.steps is not None:
        update["steps"] = overrides.steps
    if overrides.seed is not None:
        update["seed"] = spec.seed.model_copy(update={"base": overrides.seed})
    if overrides.lora_scale is not None:
        if spec.lora is None:
            raise CampaignError(campaign.path, "overrides.lora_scale", "this campaign has no LoRA")
        update["lora"] = spec.lora.model_copy(update={"scale": overrides.lora_scale})
    model = parse_model_option(overrides.model) if overrides.model else campaign.model
    return campaign.model_copy(update={"spec": spec.model_copy(update=update), "model": model})


def plan_render(
    campaign_path: str | Path,
    output_root: Path,
    selection: Selection | None = None,
    overrides: Overrides | None = None,
    settings: RenderSettings | None = None,
) -> RenderPlan:
    """Load and check the campaign, narrow and adjust it, expand it, find the jobs still to render."""
    if output_root.exists() and not output_root.is_dir():
        raise VisuelsError(output_root, None, "is a file: the output folder must be a folder")
    loaded = load_campaign(campaign_path)
    campaign = _override(_select(loaded, selection or Selection()), overrides or Overrides())
    signing_files()  # no keys, no export: say so before anything is rendered
    watermark.configured_key()  # nor with a watermark key setting that is not a key
    info = describe_model(campaign.model, source=str(campaign.path))
    precision = (settings or RenderSettings()).dtype
    jobs = expand_jobs(campaign, info, precision)
    if not jobs:
        raise CampaignError(campaign.path, "selection", "the selection is empty: no commune, audience or format left")
    # The report is the whole campaign's, whatever this run renders: a subset run must not shrink it.
    whole = (
        jobs
        if selection in (None, Selection())
        else expand_jobs(_override(loaded, overrides or Overrides()), info, precision)
    )
    jobs, held = hold_flagged(jobs, campaign.spec.render_flagged)
    if held:
        log.warning(
            "%s: %d job(s) held back for their prompt or texts (see `visuels check`): %s",
            campaign.slug,
            len(held),
            "; ".join(sorted({reason for job in held for reason in job.banned + job.review})),
        )
    pending = pending_jobs(jobs, output_root, campaign.slug)
    if pending:
        # What a killed run left half-written has no record, so its jobs are among these.
        remove_leftover_temporaries(output_root / campaign.slug)
    log.info("%s: %d jobs, %d to render", campaign.slug, len(jobs), len(pending))
    lora = campaign.spec.lora
    return RenderPlan(
        campaign_name=campaign.spec.name,
        campaign_slug=campaign.slug,
        setup=RenderSetup(
            charter_path=campaign.charter.path,
            model=info.ref,
            model_description=info.description,
            precision=precision,
            lora=LoraWeights(path=str(campaign.lora_path), scale=lora.scale) if lora else None,
        ),
        jobs=jobs,
        pending=pending,
        campaign_keys=[job.key for job in whole],
        held=held,
        language=campaign.spec.languages[0],
    )


def hold_flagged(jobs: list[RenderJob], render_flagged: bool) -> tuple[list[RenderJob], list[RenderJob]]:
    """(jobs to render, jobs held back): a banned term always holds a job back; a sensitive one
    unless the campaign renders flagged jobs (they are then marked for review)."""
    allowed = [job for job in jobs if not job.banned and (render_flagged or not job.review)]
    kept = {job.key for job in allowed}
    return allowed, [job for job in jobs if job.key not in kept]


def pending_jobs(jobs: list[RenderJob], output_root: Path, campaign_slug: str) -> list[RenderJob]:
    """The jobs whose file is not on disk at the size the record holds."""
    url = database_url(output_root)
    if is_missing(url):
        return list(jobs)  # planning writes nothing: a first run creates the database as it exports
    database = Database(url)
    try:
        recorded = manifest.recorded_sizes(database, campaign_slug)
    finally:
        database.close()
    return [job for job in jobs if not manifest.is_done(output_root, job.relative_path, recorded.get(job.key))]


def export_target(plan: RenderPlan, output_root: Path, run_id: str | None = None) -> ExportTarget:
    return ExportTarget(
        output_root=output_root,
        charter_path=plan.setup.charter_path,
        database_url=database_url(output_root),
        signing=signing_files(),
        model_description=plan.setup.model_description,
        run_id=run_id,
    )


def render_jobs(
    renderer: Renderer,
    setup: RenderSetup,
    jobs: list[RenderJob],
    target: ExportTarget,
    settings: RenderSettings,
    claims: JobClaims | None = None,
    keep_going: Callable[[], str | None] | None = None,
) -> list[ExportedFile]:
    """Render some of a plan's jobs with this process's renderer; each file is recorded as it is written
    (``claims``: the caller's, if it holds some of the jobs already; ``keep_going``: asked before each
    batch, why to stop, or None)."""
    batch_size = settings.batch_size or default_batch_size(renderer.host.device)
    if jobs:  # so that a retouch can load the same model and LoRA, from their hashes
        database = Database(target.database_url)
        try:
            model_sources.record(database, jobs[0].model_hash, setup.model, jobs[0].lora_hash, setup.lora)
        finally:
            database.close()
    exported = renderer.render(setup.model, setup.precision, setup.lora, jobs, target, batch_size, claims, keep_going)
    what = sorted({f"{item.job.commune_name} {item.job.format}" for item in exported})
    log.info("rendered %d image(s): %s", len(exported), ", ".join(what))
    return exported


def finish_render(plan: RenderPlan, output_root: Path) -> Reports:
    """Export the campaign's record as manifest.json, report on every output of the plan, and sign a
    checkpoint of the ledger as it now is; the approved folder is put in line with the record."""
    charter = load_charter(plan.setup.charter_path)
    database = Database(database_url(output_root))
    try:
        sync_approved(database, output_root, plan.campaign_slug)
        manifest.write_manifest_json(database, output_root, plan.campaign_slug, plan.campaign_name)
        reports = write_reports(database, output_root, plan, charter)
        write_checkpoint(database, output_root, signing_files())
        return reports
    finally:
        database.close()


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


def rendered_since_plan(plan: RenderPlan, output_root: Path) -> list[RenderJob]:
    """The planned jobs that are done now: what this run, or its sub-runs (shards), rendered."""
    still_pending = {job.key for job in pending_jobs(plan.pending, output_root, plan.campaign_slug)}
    return [job for job in plan.pending if job.key not in still_pending]


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
