"""Incremental runs: same key, nothing to render; a changed commune or LoRA re-renders what it shapes."""

import csv
import json
from collections.abc import Callable
from pathlib import Path

from pipelines.export import manifest_path
from pipelines.render import plan_render
from tests.conftest import edit_yaml


def pretend_rendered(out: Path, campaign: Path) -> list[str]:
    """Files and manifest entries for every job, as if a run had exported them."""
    plan = plan_render(campaign, out)
    files = {}
    for job in plan.jobs:
        path = out / job.relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"picture")
        files[job.key] = {"file": job.relative_path, "size": 7}
    manifest_path(out, plan.campaign_slug).write_text(json.dumps({"files": files}), encoding="utf-8")
    return [job.key for job in plan.jobs]


def test_nothing_to_render_when_every_output_is_there(make_campaign: Callable[..., Path], tmp_path: Path) -> None:
    campaign, out = make_campaign(), tmp_path / "outputs"
    pretend_rendered(out, campaign)
    assert plan_render(campaign, out).pending == []


def test_a_truncated_or_missing_output_is_rendered_again(make_campaign: Callable[..., Path], tmp_path: Path) -> None:
    campaign, out = make_campaign(), tmp_path / "outputs"
    pretend_rendered(out, campaign)
    jobs = plan_render(campaign, out).jobs
    (out / jobs[0].relative_path).write_bytes(b"pic")  # truncated
    (out / jobs[1].relative_path).unlink()
    assert [job.key for job in plan_render(campaign, out).pending] == [jobs[0].key, jobs[1].key]


def test_one_changed_commune_re_renders_that_commune_only(
    make_campaign: Callable[..., Path], charter_dir: Path, tmp_path: Path
) -> None:
    campaign, out = make_campaign(), tmp_path / "outputs"
    pretend_rendered(out, campaign)
    communes = charter_dir / "communes.csv"
    rows = list(csv.DictReader(communes.open(encoding="utf-8")))
    for row in rows:
        if row["name"] == "Sète":
            row["landscapes"] = "sea;village"  # was sea;city: the prompt changes
    with communes.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    pending = plan_render(campaign, out).pending
    assert pending and {job.commune_name for job in pending} == {"Sète"}
    assert len(pending) == len([job for job in plan_render(campaign, out).jobs if job.commune_name == "Sète"])


def test_a_new_lora_re_renders_everything(make_campaign: Callable[..., Path], tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    (tmp_path / "style.safetensors").write_bytes(b"weights v1")
    campaign = make_campaign(lora={"path": "style.safetensors", "scale": 0.8})
    keys = pretend_rendered(out, campaign)
    (tmp_path / "style.safetensors").write_bytes(b"weights v2")
    assert len(plan_render(campaign, out).pending) == len(keys)


def test_a_charter_change_re_renders_everything(
    make_campaign: Callable[..., Path], charter_dir: Path, tmp_path: Path
) -> None:
    campaign, out = make_campaign(), tmp_path / "outputs"
    keys = pretend_rendered(out, campaign)
    edit_yaml(charter_dir / "charter.yaml", lambda d: d["palette"][0].update(hex="#1B4F73"))
    assert len(plan_render(campaign, out).pending) == len(keys)


def test_reports_cope_with_entries_from_before_compliance_checks(
    make_campaign: Callable[..., Path], tmp_path: Path
) -> None:
    from pipelines.report import write_reports

    campaign, out = make_campaign(), tmp_path / "outputs"
    keys = pretend_rendered(out, campaign)  # entries with no compliance record, no thumbnail
    plan = plan_render(campaign, out)
    manifest = json.loads(manifest_path(out, plan.campaign_slug).read_text(encoding="utf-8"))
    for job in plan.jobs:
        manifest["files"][job.key]["inputs"] = job.model_dump()
    manifest_path(out, plan.campaign_slug).write_text(json.dumps(manifest), encoding="utf-8")
    reports = write_reports(out, plan.campaign_slug, "Test", keys)
    assert [row["passed"] for row in reports.rows] == ["not checked"] * len(keys)
    assert reports.html.is_file() and reports.csv.is_file()
