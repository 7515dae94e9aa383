"""The render-campaign flow: plan, render batch by batch, record the manifest."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from pipelines.devices import DeviceName, DtypeName
from pipelines.export import ExportedFile
from pipelines.jobs import RenderJob, batches
from pipelines.model_reference import parse_model_option
from pipelines.render import (
    RenderPlan,
    RenderSettings,
    RenderSummary,
    finish_render,
    plan_render,
    render_batch,
    summarise,
)
from pipelines.report import Reports
from pipelines.third_party_logs import quiet_third_party_logs


@task(name="plan-campaign", cache_policy=NO_CACHE)
def plan_campaign(
    campaign: str, output_root: Path, communes: list[str] | None, max_communes: int | None, model: str | None
) -> RenderPlan:
    model_ref = parse_model_option(model) if model else None
    return plan_render(campaign, output_root, communes=communes, max_communes=max_communes, model=model_ref)


# One task per batch, never per image or step: Prefect's per-task overhead stays small.
@task(name="render-batch", cache_policy=NO_CACHE, tags=["gpu"])
def render_batch_task(
    plan: RenderPlan, jobs: list[RenderJob], output_root: Path, settings: RenderSettings
) -> list[ExportedFile]:
    return render_batch(plan, jobs, output_root, settings, run_id=flow_run.get_id())


@task(name="record-and-report", cache_policy=NO_CACHE)
def record_and_report(plan: RenderPlan, exported: list[ExportedFile], output_root: Path) -> Reports:
    reports = finish_render(plan, exported, output_root)
    if reports.rows:
        create_table_artifact(
            key=f"compliance-{plan.campaign_slug}",
            table=reports.rows,
            description=f"Charter compliance of {plan.campaign_name}: {reports.html}",
        )
    return reports


@flow(name="render-campaign")
def render_campaign(
    campaign: str,
    communes: list[str] | None = None,
    max_communes: int | None = None,
    output_dir: str = "outputs",
    model: str | None = None,
    batch_size: int = 4,
    device: DeviceName = "auto",
    dtype: DtypeName = "auto",
) -> RenderSummary:
    """Render a campaign's visuals for its communes, audiences and formats.

    Args:
        campaign: Path to the campaign YAML file.
        communes: Only these communes (official names or INSEE codes) of the campaign.
        max_communes: Only the first N selected communes.
        output_dir: Folder that receives <campaign>/<commune>/<format>/ files.
        model: Override the campaign's model: demo, a diffusers folder, FILE.safetensors::CONFIG_DIR or hub:ID.
        batch_size: Images generated per model call.
        device: auto, cuda, mps or cpu.
        dtype: auto, float32, float16 or bfloat16.
    """
    quiet_third_party_logs()
    output_root = Path(output_dir).resolve()
    settings = RenderSettings(device=device, dtype=dtype, batch_size=batch_size)
    plan = plan_campaign(campaign, output_root, communes, max_communes, model)
    exported: list[ExportedFile] = []
    # Batches run one after another: they share the process's one loaded model.
    for batch in batches(plan.pending, settings.batch_size):
        exported += render_batch_task(plan, batch, output_root, settings)
    reports = record_and_report(plan, exported, output_root)
    return summarise(plan, exported, output_root, reports)
