"""Incremental runs: same key, nothing to render; a changed commune or LoRA re-renders what it shapes."""

import csv
import hashlib
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from visuels.planning.plan import plan_render
from visuels.record import manifest
from visuels.record.database import Database, database_url

from tests.helpers import edit_yaml, write_random_lora

PICTURE_SHA256 = hashlib.sha256(b"picture").hexdigest()


def pretend_rendered(out: Path, campaign: Path) -> list[str]:
    """Files and their records for every job, as if a run had exported them."""
    plan = plan_render(campaign, out)
    database = Database(database_url(out))
    with database.transaction() as connection:
        for job in plan.jobs:
            path = out / job.relative_path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"picture")
            created = datetime.now(UTC).isoformat(timespec="seconds")
            manifest.stamp_as_exported(path, created)
            entry = {"file": job.relative_path, "size": 7, "sha256": PICTURE_SHA256, "watermark": "", "thumbnail": ""}
            entry |= {"compliance": {}, "inputs": {}, "created": created, "ledger_id": 0}
            manifest.add(connection, job.key, job.campaign, entry)
    database.close()
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


def test_a_new_lora_re_renders_everything(make_campaign: Callable[..., Path], tmp_path: Path, lora_file: Path) -> None:
    out = tmp_path / "outputs"
    shutil.copyfile(lora_file, tmp_path / "style.safetensors")
    campaign = make_campaign(lora={"path": "style.safetensors", "scale": 0.8})
    keys = pretend_rendered(out, campaign)
    shutil.copyfile(write_random_lora(tmp_path / "retrained", seed=2), tmp_path / "style.safetensors")
    assert len(plan_render(campaign, out).pending) == len(keys)


def test_a_charter_change_re_renders_everything(
    make_campaign: Callable[..., Path], charter_dir: Path, tmp_path: Path
) -> None:
    campaign, out = make_campaign(), tmp_path / "outputs"
    keys = pretend_rendered(out, campaign)
    edit_yaml(charter_dir / "charter.yaml", lambda d: d["palette"][0].update(hex="#1B4F73"))
    assert len(plan_render(campaign, out).pending) == len(keys)


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_the_report_covers_the_whole_campaign_after_a_subset_render(
    make_campaign: Callable[..., Path], tmp_path: Path, renderer
) -> None:
    from visuels.planning.request import Selection
    from visuels.review.publish import finish_render

    from tests.helpers import render_now

    campaign, out = make_campaign(steps=2, formats=["instagram_square"]), tmp_path / "outputs"
    for commune in ("Sète", "Castelnau-d'Estrétefonds"):  # two runs, one commune each
        plan = plan_render(campaign, out, Selection(communes=[commune]))
        render_now(renderer, plan, out)
        reports = finish_render(plan, out)
    with (out / plan.campaign_slug / "report.csv").open(encoding="utf-8") as report:
        communes = {row["commune"] for row in csv.DictReader(report)}
    assert communes == {"Sète", "Castelnau-d'Estrétefonds"}, communes
    assert len(reports.rows) == 2


def test_a_campaign_of_the_same_name_under_another_charter_is_refused(
    make_campaign: Callable[..., Path], charter_dir: Path, tmp_path: Path
) -> None:
    """Two regions' "Été 2027" in one output folder would share a folder, a manifest and a report:
    the folder belongs to the charter of its first run; another charter's campaign of that name is
    refused at planning, and at rendering if two machines start both at once."""
    from visuels.errors import CampaignError
    from visuels.record import campaign_folders

    campaign, out = make_campaign(), tmp_path / "outputs"
    pretend_rendered(out, campaign)
    plan = plan_render(campaign, out)
    database = Database(database_url(out))
    campaign_folders.claim(database, plan.campaign_slug, plan.setup.charter, plan.setup.charter_path)  # its run
    edit_yaml(charter_dir / "charter.yaml", lambda d: d["palette"][0].update(hex="#1B4F73"))
    assert len(plan_render(campaign, out).pending) == len(plan.jobs)  # the same charter, edited: its own folder
    edit_yaml(charter_dir / "charter.yaml", lambda d: d.update(name="Région Ardenne", slug="ardenne"))
    with pytest.raises(CampaignError) as refused:
        plan_render(campaign, out)
    assert (refused.value.file, refused.value.field) == (str(campaign), "name")
    assert "of charter 'Région Solane' is in this output folder already" in str(refused.value)
    other = plan.setup.charter.model_copy(update={"slug": "ardenne"})
    with pytest.raises(CampaignError, match="Région Solane"):
        campaign_folders.claim(database, plan.campaign_slug, other, plan.setup.charter_path)
    campaign_folders.claim(database, plan.campaign_slug, plan.setup.charter, plan.setup.charter_path)  # its own again
    database.close()
    assert plan_render(campaign, tmp_path / "elsewhere").pending  # another output folder is free
