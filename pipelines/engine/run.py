"""Rendering a plan's jobs through a process's renderer, and what a run did: the functions the
flows, the CLI and the render workers share."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from visuels._internal.i18n import counted
from visuels.engine.claims import JobClaims
from visuels.engine.cpu_stage import ExportTarget
from visuels.engine.export import ExportedFile
from visuels.marking.keys import signing_files
from visuels.models.devices import default_batch_size
from visuels.planning.jobs import RenderJob
from visuels.planning.plan import RenderPlan, RenderSetup, pending_jobs
from visuels.planning.request import RenderSettings
from visuels.record import campaign_folders, model_sources
from visuels.record.database import Database, database_url

if TYPE_CHECKING:  # the renderer imports the model libraries: planning does not need them
    from visuels.engine.renderer import Renderer

log = logging.getLogger(__name__)


def export_target(plan: RenderPlan, output_root: Path, run_id: str | None = None) -> ExportTarget:
    return ExportTarget(
        output_root=output_root,
        charter_path=plan.setup.charter_path,
        database_url=database_url(output_root),
        signing=signing_files(),
        model_description=plan.setup.model_description,
        model_licence=plan.setup.model_licence.licence.id,
        licence_override=plan.setup.model_licence.override,
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
    gpu_slot: Callable[[], AbstractContextManager] = nullcontext,
) -> list[ExportedFile]:
    """Render some of a plan's jobs with this process's renderer; each file is recorded as it is written
    (``claims``: the caller's, if it holds some of the jobs already; ``keep_going``: asked before each
    batch, why to stop, or None; ``gpu_slot``: held while rendering, ``Renderer.render`` says why)."""
    batch_size = settings.batch_size or default_batch_size(renderer.host.device)
    if jobs:  # the folder's charter, then what a retouch needs to load the same model and LoRA
        database = Database(target.database_url)
        try:
            campaign_folders.claim(database, jobs[0].campaign, setup.charter, setup.charter_path)
            model_sources.record_charter(database, jobs[0].charter_hash, setup.charter_path)
            model_sources.record(database, jobs[0].model_hash, setup.model, jobs[0].lora_hash, setup.lora)
            speed = setup.lora.applied()[-1] if setup.lora else None  # the speed LoRA is applied last
            model_sources.record(database, jobs[0].model_hash, setup.model, jobs[0].speed_lora_hash, speed)
        finally:
            database.close()
    exported = renderer.render(
        setup.model, setup.precision, setup.lora, jobs, target, batch_size, claims, keep_going, gpu_slot
    )
    what = sorted({f"{item.job.commune_name} {item.job.format}" for item in exported})
    log.info("rendered %s: %s", counted(len(exported), "image"), ", ".join(what))
    for item in exported:
        if item.edit_kept_as:  # said where the run is watched: the console, or the Prefect run's log
            log.warning(
                "%s had been changed since it was rendered (saved over): kept as %s beside it; the output was made"
                " again (`visuels finalize %s` marks the edit)",
                item.job.relative_path,
                item.edit_kept_as,
                item.edit_kept_as,
            )
    return exported


def rendered_since_plan(plan: RenderPlan, output_root: Path) -> list[RenderJob]:
    """The planned jobs that are done now: what this run, or its sub-runs (shards), rendered."""
    still_pending = {job.key for job in pending_jobs(plan.pending, output_root, plan.campaign_slug)}
    return [job for job in plan.pending if job.key not in still_pending]
