"""Faults injected into real renders: two renders of one campaign at once, and a run that fails
on a full disk. (A render killed with SIGKILL is in test_renderer.py; a damaged database and the
bad-input corpus in bad_inputs/.) Each ends with exactly the expected files, whole, each recorded
once, and every file verifying."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from visuels.engine.renderer import Renderer
from visuels.inputs.charter import load_charter
from visuels.marking.keys import signing_files
from visuels.planning.plan import RenderPlan, plan_render
from visuels.record import ledger
from visuels.record.database import Database, database_url
from visuels.review.publish import finish_render
from visuels.review.verify import verify_file

from tests.helpers import render_now

pytestmark = pytest.mark.integration

# One render, as a process of its own: plan, wait for the signal, render with one CPU worker, report.
RENDER_PROCESS = """
import sys, time
from pathlib import Path
from visuels.planning.request import RenderSettings
from visuels.engine.run import export_target, render_jobs
from visuels.review.publish import finish_render
from visuels.planning.plan import plan_render
from visuels.engine.renderer import Renderer

campaign, out, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
plan = plan_render(campaign, out)
renderer = Renderer.for_device("cpu", cpu_workers=1)
ready.touch()
while not go.exists():
    time.sleep(0.005)
exported = render_jobs(renderer, plan.setup, plan.pending, export_target(plan, out), RenderSettings(batch_size=1))
finish_render(plan, out)
renderer.close()
print(len(exported))
"""


# `visuels` with a disk that fills up at the Nth picture ($FULL_AT; 0: never). Pictures are finished
# in the run's own process (no CPU worker processes), where the fault is injected.
CLI_WITH_A_DISK_THAT_FILLS = """
import errno, os, sys
from pathlib import Path
import visuels.engine.export as export
import visuels.engine.renderer

visuels.engine.renderer.default_cpu_workers = lambda device: 0
write, written, full_at = export.write_marked, [], int(os.environ["FULL_AT"])

class FullDisk(type(Path())):
    def write_bytes(self, data):
        super().write_bytes(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

def write_until_full(image, target, *arguments, **options):
    written.append(target.target)
    if len(written) == full_at:
        target.path = FullDisk(target.path)
    return write(image, target, *arguments, **options)

export.write_marked = write_until_full
from visuels.flows.cli import main
sys.argv = ["visuels", *sys.argv[1:]]
raise SystemExit(main())
"""


def rows(url: str, query: str) -> list[tuple]:
    database = Database(url)
    try:
        with database.reading() as connection:
            return [tuple(row) for row in connection.exec_driver_sql(query)]
    finally:
        database.close()


def assert_record_matches_files(out: Path, *plans: RenderPlan, url: str | None = None) -> None:
    """Exactly the pictures of ``plans`` (one per campaign in the record), whole; one outputs row
    and one export row per file, with the file's sha256; each manifest.json the same; the chain
    intact; every file verifying. ``url``: the database of record, if not the output folder's."""
    url = url or database_url(out)
    pictures = {
        str(path.relative_to(out))
        for plan in plans
        for path in (out / plan.campaign_slug).rglob("*.png")
        if not {"thumbnails", "edges", "approved"} & set(path.parts)
    }
    assert pictures == {job.relative_path for plan in plans for job in plan.jobs}
    assert not [path for path in out.rglob("*") if path.name.endswith(".tmp")]
    on_disk = {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in pictures}
    assert dict(rows(url, "SELECT file, sha256 FROM outputs")) == on_disk
    exports = rows(url, "SELECT file, sha256 FROM ledger WHERE parent_id IS NULL")
    assert sorted(exports) == sorted(on_disk.items())  # one export row per file, none stale
    for plan in plans:
        listed = json.loads((out / plan.campaign_slug / "manifest.json").read_text(encoding="utf-8"))["files"]
        assert {entry["file"]: entry["sha256"] for entry in listed.values()} == {
            job.relative_path: on_disk[job.relative_path] for job in plan.jobs
        }
    assert rows(url, "SELECT COUNT(*) FROM claims") == [(0,)]  # every claim released
    database = Database(url)
    try:
        assert ledger.verify_chain(database)[1] is None
        for plan in plans:
            charter = load_charter(plan.setup.charter_path)
            for job in plan.jobs:
                report = verify_file(out / job.relative_path, charter, database, signing_files().trust_anchors)
                assert report.ok, (job.relative_path, {k: c.detail for k, c in report.checks.items() if not c.passed})
    finally:
        database.close()


def test_two_renders_of_one_campaign_at_once_split_its_jobs_and_render_each_once(
    make_campaign: Callable[..., Path], tmp_path: Path, any_database_url: str
) -> None:
    """Two "machines": separate working folders, sharing only the output folder and the database
    of record (a SQLite file, then a PostgreSQL server)."""
    campaign = make_campaign(audiences={"residents": "families", "visitors": "tourists"}, steps=2)  # 8 jobs
    out = tmp_path / "outputs"
    go = tmp_path / "go"
    runs = []
    for number in (1, 2):
        ready, machine = tmp_path / f"ready-{number}", tmp_path / f"machine-{number}"
        machine.mkdir()
        command = [sys.executable, "-c", RENDER_PROCESS, str(campaign), str(out), str(ready), str(go)]
        environment = os.environ | {"VISUELS_DATABASE_URL": any_database_url}
        runs.append(
            (
                ready,
                subprocess.Popen(
                    command, cwd=machine, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                ),
            )
        )
    deadline = time.monotonic() + 300
    while not all(ready.exists() for ready, _ in runs) and time.monotonic() < deadline:
        assert all(run.poll() is None for _, run in runs), [run.communicate() for _, run in runs]
        time.sleep(0.05)
    go.touch()  # both planned all 8 jobs: now they race for them
    counts = []
    for _, run in runs:
        stdout, stderr = run.communicate(timeout=600)
        assert run.returncode == 0, stderr
        counts.append(int(stdout.strip().splitlines()[-1]))
    assert sum(counts) == 8, counts  # both planned all 8: without claims, 16 would be rendered
    assert_record_matches_files(out, plan_render(campaign, tmp_path / "elsewhere"), url=any_database_url)


def test_a_full_disk_mid_run_ends_in_one_line_keeps_and_lists_what_was_finished_and_a_rerun_does_the_rest(
    make_campaign: Callable[..., Path], tmp_path: Path, renderer: Renderer
) -> None:
    campaign, out = make_campaign(), tmp_path / "outputs"  # 4 pictures
    command = [sys.executable, "-c", CLI_WITH_A_DISK_THAT_FILLS, "render", str(campaign), "--output-dir", str(out)]
    command += ["--batch-size", "1"]
    environment = os.environ | {"PREFECT_HOME": str(tmp_path / "prefect"), "FULL_AT": "3"}
    full = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
    assert full.returncode == 3, full.stdout + full.stderr  # the environment failed, not the input
    assert re.fullmatch(
        rf"error: {re.escape(str(out))}/\S+\.png: cannot write it: No space left on device\n", full.stderr
    )
    assert "Traceback" not in full.stdout
    pictures = {
        path for path in (out / "test-campagne").rglob("*.png") if not {"thumbnails", "edges"} & set(path.parts)
    }
    assert len(pictures) == 2  # the two finished, whole; nothing of the third
    assert not [path for path in out.rglob("*") if path.name.endswith(".tmp")]
    listed = json.loads((out / "test-campagne" / "manifest.json").read_text(encoding="utf-8"))["files"]
    assert {out / entry["file"] for entry in listed.values()} == pictures  # listed although the run failed

    rerun = plan_render(campaign, out)  # space freed: the same run again (here in this process)
    assert len(rerun.pending) == 2
    assert len(render_now(renderer, rerun, out)) == 2
    finish_render(rerun, out)
    assert_record_matches_files(out, rerun)


def test_a_damaged_manifest_json_changes_nothing_and_the_next_run_writes_it_again(
    make_campaign: Callable[..., Path], tmp_path: Path, renderer: Renderer
) -> None:
    campaign, out = make_campaign(), tmp_path / "outputs"
    plan = plan_render(campaign, out)
    render_now(renderer, plan, out)
    finish_render(plan, out)
    listing = out / plan.campaign_slug / "manifest.json"
    listing.write_text('{"files": {"cut off', encoding="utf-8")  # a crashed editor, a half-copied folder
    again = plan_render(campaign, out)
    assert again.pending == []  # the database of record says what is done, not this export
    finish_render(again, out)
    assert_record_matches_files(out, again)  # listed again, in full
