"""Planning and rendering a campaign: the functions both the flow and the CLI run.

``plan_render`` expands a campaign into jobs and leaves out those already done;
``render_batch`` generates, post-processes and exports one batch;
``finish_render`` records the batch results in the campaign's manifest.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from diffusers import DiffusionPipeline
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pipelines.campaign import Campaign, CommuneSelection, load_campaign, select_communes
from pipelines.charter import load_charter
from pipelines.compliance import assess
from pipelines.devices import DeviceName, DtypeName, choose_device, choose_dtype
from pipelines.errors import CampaignError
from pipelines.export import ExportedFile, export_png, is_done, manifest_path, read_manifest, write_manifest
from pipelines.generation import generate
from pipelines.jobs import RenderJob, expand_jobs
from pipelines.marking.keys import signing_files
from pipelines.marking.ledger import ledger_path
from pipelines.marking.mark import MarkingContext
from pipelines.model_loading import LoraWeights, load_pipeline
from pipelines.model_reference import ModelRef, describe_model, parse_model_option
from pipelines.postprocess.chain import postprocess
from pipelines.render_request import Overrides, Selection
from pipelines.report import Reports, write_reports

log = logging.getLogger(__name__)


class RenderSettings(BaseModel):
    """How to run the model: these do not change which pictures are wanted."""

    model_config = ConfigDict(frozen=True)

    device: DeviceName = "auto"
    dtype: DtypeName = "auto"
    batch_size: int = Field(default=4, ge=1, le=64)


class RenderSetup(BaseModel):
    """What every batch of a plan shares: the charter and the model with its LoRA (small, to send)."""

    model_config = ConfigDict(frozen=True)

    charter_path: Path
    model: ModelRef
    model_description: str
    lora: LoraWeights | None


class RenderPlan(BaseModel):
    """A campaign expanded into jobs, with those still to render."""

    model_config = ConfigDict(frozen=True)

    campaign_name: str
    campaign_slug: str
    setup: RenderSetup
    jobs: list[RenderJob]
    pending: list[RenderJob]


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
) -> RenderPlan:
    """Load and check the campaign, narrow and adjust it, expand it, find the jobs still to render."""
    campaign = load_campaign(campaign_path)
    campaign = _override(_select(campaign, selection or Selection()), overrides or Overrides())
    signing_files()  # no keys, no export: say so before anything is rendered
    info = describe_model(campaign.model, source=str(campaign.path))
    jobs = expand_jobs(campaign, info)
    if not jobs:
        raise CampaignError(campaign.path, "selection", "the selection is empty: no commune, audience or format left")
    manifest = read_manifest(output_root, campaign.slug)
    pending = [job for job in jobs if not is_done(job, output_root, manifest)]
    log.info("%s: %d jobs, %d to render", campaign.slug, len(jobs), len(pending))
    lora = campaign.spec.lora
    return RenderPlan(
        campaign_name=campaign.spec.name,
        campaign_slug=campaign.slug,
        setup=RenderSetup(
            charter_path=campaign.charter.path,
            model=campaign.model,
            model_description=info.description,
            lora=LoraWeights(path=str(campaign.lora_path), scale=lora.scale) if lora else None,
        ),
        jobs=jobs,
        pending=pending,
    )


def render_batch(
    setup: RenderSetup, jobs: list[RenderJob], output_root: Path, settings: RenderSettings, run_id: str | None = None
) -> list[ExportedFile]:
    """Generate one batch with the process's loaded model, post-process, mark and export each picture."""
    charter = load_charter(setup.charter_path)
    marking = MarkingContext(
        creator=charter.spec.creator,
        model=setup.model_description,
        signing=signing_files(),
        ledger=ledger_path(output_root),
        run_id=run_id,
    )
    if any(job.charter_hash != charter.hash for job in jobs):
        raise CampaignError(setup.charter_path, None, "the charter changed since the campaign was planned")
    device = choose_device(settings.device)
    pipeline = load_pipeline(setup.model, device, choose_dtype(device, settings.dtype), setup.lora)
    pictures = generate_fitting_memory(pipeline, jobs)
    exported = []
    for job, picture in zip(jobs, pictures, strict=True):
        result = postprocess(picture, charter, job.width, job.height, job.language, job.commune_name, job.headline)
        exported.append(export_png(result.image, job, output_root, assess(result, charter), marking))
    what = sorted({f"{job.commune_name} {job.format}" for job in jobs})
    log.info("rendered %d image(s): %s", len(exported), ", ".join(what))
    return exported


def generate_fitting_memory(pipeline: DiffusionPipeline, jobs: list[RenderJob]) -> list[Image.Image]:
    """Generate ``jobs``; on a CUDA out-of-memory error, halve the batch and try each half.

    Each job has its own generator, so the pictures do not depend on how the batch was split.
    """
    try:
        return generate(pipeline, jobs)
    except torch.cuda.OutOfMemoryError:
        if len(jobs) == 1:
            raise
        torch.cuda.empty_cache()
        half = len(jobs) // 2
        log.warning("out of GPU memory with %d images per call: trying %d and %d", len(jobs), half, len(jobs) - half)
        return generate_fitting_memory(pipeline, jobs[:half]) + generate_fitting_memory(pipeline, jobs[half:])


def finish_render(plan: RenderPlan, exported: list[ExportedFile], output_root: Path) -> Reports:
    """Record what was written in the manifest, then report on every output of the plan."""
    if exported:
        write_manifest(output_root, plan.campaign_slug, plan.campaign_name, exported)
    return write_reports(output_root, plan.campaign_slug, plan.campaign_name, [job.key for job in plan.jobs])


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
    """The planned jobs that are done now: what sub-runs (shards) rendered for this plan."""
    manifest = read_manifest(output_root, plan.campaign_slug)
    return [job for job in plan.pending if is_done(job, output_root, manifest)]


def summarise(plan: RenderPlan, rendered: list[RenderJob], output_root: Path, reports: Reports) -> RenderSummary:
    return RenderSummary(
        campaign=plan.campaign_slug,
        output_dir=output_root / plan.campaign_slug,
        manifest=manifest_path(output_root, plan.campaign_slug) if reports.rows else None,
        report=reports.html if reports.rows else None,
        jobs=len(plan.jobs),
        rendered=len(rendered),
        failed_compliance=sum(1 for row in reports.rows if row["passed"] == "no"),
        files=[job.relative_path for job in rendered],
        job_keys=[job.key for job in rendered],
    )
