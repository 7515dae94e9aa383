"""Planning a render: a campaign expanded into jobs, narrowed to a selection, adjusted by a run's
overrides, less the jobs the record says are done (``plan_render``)."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from visuels._internal.atomic import check_output_folder, remove_leftover_temporaries
from visuels._internal.collector import cycles_collected_after
from visuels._internal.i18n import counted
from visuels.errors import CampaignError
from visuels.inputs.campaign import (
    Campaign,
    CommuneSelection,
    communes_to_choose_from,
    load_campaign,
    select_communes,
)
from visuels.inputs.model_refs import LoraWeights, ModelRef, parse_model_option
from visuels.marking.keys import signing_files
from visuels.models.devices import DtypeName
from visuels.models.reference import ModelInfo, describe_model, describe_named_model, family_of
from visuels.planning.jobs import RenderJob, expand_jobs
from visuels.planning.model_use import LicenceRecord, fitted_to_run_model, licence_record
from visuels.planning.photo_sizes import SHOWN, more_soft_photos, soft_photos
from visuels.planning.request import Overrides, RenderSettings, Selection
from visuels.record import campaign_folders, manifest
from visuels.record.campaign_folders import CharterIdentity
from visuels.record.database import Database, database_url, is_missing

log = logging.getLogger(__name__)


class RenderSetup(BaseModel):
    """What every batch of a plan shares: the charter and the model with its LoRA and precision."""

    model_config = ConfigDict(frozen=True)

    charter_path: Path
    charter: CharterIdentity  # whose campaign folder this is (visuels.record.campaign_folders)
    model: ModelRef
    model_description: str
    model_licence: LicenceRecord  # what every picture records of the model's licence
    precision: DtypeName  # as asked: the machine that renders resolves "auto" (visuels.models.devices)
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
    review: bool = Field(default=False, description="The campaign's setting: its served runs wait for review.")


def _select(campaign: Campaign, selection: Selection) -> Campaign:
    """Narrow the campaign to the selection; an unknown name is an error, never silently dropped."""
    spec = campaign.spec
    communes = campaign.communes
    if selection.communes:
        names = CommuneSelection(names=selection.communes)
        every = communes_to_choose_from(spec.communes, campaign.path.parent, campaign.path)
        selected = {commune.insee for commune in communes}
        left_out = [commune for commune in every if commune.insee not in selected]
        communes = select_communes(names, communes, campaign.path, "selection.communes", left_out)
    if selection.max_communes is not None:
        communes = communes[: selection.max_communes]
    for field, wanted, available in (
        ("selection.audiences", selection.audiences, list(spec.audiences)),
        ("selection.formats", selection.formats, spec.formats),
    ):
        unknown = [name for name in wanted if name not in available]
        if unknown:
            known = ", ".join(available)
            raise CampaignError(
                campaign.path, field, "'{unknown}' is not in this campaign ({known})", unknown=unknown[0], known=known
            )
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
    return campaign.model_copy(update={"spec": spec.model_copy(update=update)})


def _on_model(campaign: Campaign, model: ModelInfo, given: bool) -> Campaign:
    """The campaign on ``model``: its own, or the one its run gives (``given``), fitted to that family."""
    if not given:
        return campaign
    own_family = family_of(campaign.model)
    return fitted_to_run_model(campaign.model_copy(update={"model": model.ref}), own_family, model)


def lora_weights(campaign: Campaign) -> LoraWeights | None:
    """The LoRAs every job of the campaign applies: its style LoRA with its speed LoRA, or either alone."""
    spec = campaign.spec
    style = LoraWeights(path=str(campaign.lora_path), scale=spec.lora.scale) if spec.lora else None
    speed = LoraWeights(path=str(campaign.speed_lora_path), scale=spec.speed_lora.scale) if spec.speed_lora else None
    if style is None:
        return speed
    return style.model_copy(update={"speed": speed})


@cycles_collected_after()  # a region's plan: 106,704 jobs
def plan_render(
    campaign_path: str | Path,
    output_root: Path,
    selection: Selection | None = None,
    overrides: Overrides | None = None,
    settings: RenderSettings | None = None,
) -> RenderPlan:
    """Load and check the campaign, narrow and adjust it, expand it, find the jobs still to render."""
    check_output_folder(output_root)
    loaded = load_campaign(campaign_path)
    overrides = overrides or Overrides()
    selection = selection or Selection()
    signing_files()  # no keys (signing chain, watermark key), no export: say so before anything is rendered
    model = parse_model_option(overrides.model) if overrides.model else loaded.model
    info = describe_named_model(model, "--model") if overrides.model else describe_model(model, str(loaded.path))
    whole_campaign = _override(_on_model(loaded, info, given=bool(overrides.model)), overrides)
    campaign = _select(whole_campaign, selection)
    precision = (settings or RenderSettings()).dtype
    jobs = expand_jobs(campaign, info, precision)
    if not jobs:
        raise CampaignError(campaign.path, "selection", "the selection is empty: no commune, audience or format left")
    # The report is the whole campaign's, whatever this run renders: a subset run must not shrink it.
    whole = jobs if selection == Selection() else expand_jobs(whole_campaign, info, precision)
    jobs, held = hold_flagged(jobs, campaign.spec.render_flagged)
    if held:
        log.warning(
            "%s: %s held back for their prompt or texts (see `visuels check`): %s",
            campaign.slug,
            counted(len(held), "job"),
            "; ".join(sorted({reason for job in held for reason in job.banned + job.review})),
        )
    charter = CharterIdentity(slug=campaign.charter.spec.slug, name=campaign.charter.spec.name)
    _check_folder_is_free(campaign, charter, output_root)
    pending = pending_jobs(jobs, output_root, campaign.slug)
    if pending:
        # What a killed run left half-written has no record, so its jobs are among these.
        remove_leftover_temporaries(output_root / campaign.slug)
    soft = soft_photos(campaign, pending)
    for photo in soft[:SHOWN]:
        log.warning("%s: %s", photo.where, photo.message())
    if len(soft) > SHOWN:
        log.warning("%s", more_soft_photos(len(soft) - SHOWN))
    log.info("%s: %d jobs, %d to render", campaign.slug, len(jobs), len(pending))
    return RenderPlan(
        campaign_name=campaign.spec.name,
        campaign_slug=campaign.slug,
        setup=RenderSetup(
            charter_path=campaign.charter.path,
            charter=charter,
            model=info.ref,
            model_description=info.description,
            model_licence=licence_record(campaign, info),
            precision=precision,
            lora=lora_weights(campaign),
        ),
        jobs=jobs,
        pending=pending,
        campaign_keys=[job.key for job in whole],
        held=held,
        language=campaign.spec.languages[0],
        review=campaign.spec.review,
    )


def hold_flagged(jobs: list[RenderJob], render_flagged: bool) -> tuple[list[RenderJob], list[RenderJob]]:
    """(jobs to render, jobs held back): a banned term always holds a job back; a sensitive one
    unless the campaign renders flagged jobs (they are then marked for review)."""
    allowed = [job for job in jobs if not job.banned and (render_flagged or not job.review)]
    kept = {job.key for job in allowed}
    return allowed, [job for job in jobs if job.key not in kept]


def _check_folder_is_free(campaign: Campaign, charter: CharterIdentity, output_root: Path) -> None:
    """Refuse a campaign whose name another charter's campaign has in this output folder."""
    url = database_url(output_root)
    if is_missing(url):
        return
    database = Database(url)
    try:
        campaign_folders.check_free(database, campaign.slug, charter, campaign.path, campaign.spec.name)
    finally:
        database.close()


def pending_jobs(jobs: list[RenderJob], output_root: Path, campaign_slug: str) -> list[RenderJob]:
    """The jobs whose file is not on disk as the record holds it."""
    url = database_url(output_root)
    if is_missing(url):
        return list(jobs)  # planning writes nothing: a first run creates the database as it exports
    database = Database(url)
    try:
        recorded = manifest.recorded_files(database, campaign_slug)
    finally:
        database.close()
    return [job for job in jobs if not manifest.is_done(output_root, job.relative_path, recorded.get(job.key))]
