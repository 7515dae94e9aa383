"""Publishing a region-wide campaign: what a run's last step costs once the record holds every
picture of it.

    .venv/bin/python benchmarks/publish_at_scale.py [--region 76] [--communes N]

The sample campaign (campaigns/ete-2027.yaml) over every commune of a region of the shipped COG
(76, Occitanie: 4,446 communes x 6 audience-languages x 4 formats = 106,704 pictures). One commune
is rendered for real on the demo model; its records are then copied to every other job of the plan
(the same compliance and inputs sizes as real ones; no picture files). Each step of publishing then
runs in a fresh process, which prints its time and the memory it added to the planned campaign's:
the plan, the approved folder, the ledger checkpoint, the reports, manifest.json, the check a no-op
run makes of manifest.json, the pictures a review asks about, frozen in the record, and their
records read for review; then what the review run's parameters weigh in Prefect, as job keys and as
the id they are frozen under.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = ["plan", "approved", "checkpoint", "reports", "manifest", "manifest_check", "review_frozen", "review_listing"]


def make_campaign(folder: Path, region: str) -> None:
    text = (REPO / "campaigns" / "ete-2027.yaml").read_text(encoding="utf-8")
    text = text.replace("../brand_assets", str(REPO / "brand_assets"))
    text = re.sub(r"^communes:\n(  .*\n|\s*#.*\n)*", f'communes: {{regions: ["{region}"]}}\n', text, flags=re.M)
    (folder / "campaign.yaml").write_text(text, encoding="utf-8")


def render_one_commune(campaign: Path, out: Path, commune: str) -> None:
    script = Path(sys.executable).parent / "visuels"
    command = [str(script), "render", str(campaign), "--output-dir", str(out), "--communes", commune]
    subprocess.run(command, check=True, capture_output=True)


def copy_records(campaign: Path, out: Path, communes: int | None) -> None:
    """Every job of the plan recorded, with its own inputs and the compliance of the rendered
    commune's entry of the same audience, language and format."""
    from visuels.engine.export import thumbnail_path
    from visuels.planning.plan import plan_render
    from visuels.planning.request import Selection
    from visuels.record import manifest
    from visuels.record.database import Database, database_url

    plan = plan_render(campaign, out, Selection(max_communes=communes))
    database = Database(database_url(out))
    recorded = manifest.entries(database, plan.campaign_slug)
    model = {}
    for entry in recorded.values():
        inputs = entry["inputs"]
        model[(inputs["audience"], inputs["language"], inputs["format"])] = entry
    with database.transaction() as connection:
        for job in plan.jobs:
            if job.key in recorded:
                continue
            entry = model[(job.audience, job.language, job.format)]
            copied = {**entry, "file": job.relative_path, "thumbnail": thumbnail_path(job)}
            copied["inputs"] = json.loads(job.model_dump_json(exclude={"key", "relative_path"}))
            manifest.add(connection, job.key, job.campaign, copied)
    database.close()


def recorded(out: Path) -> int:
    from visuels.record.database import Database, database_url

    database = Database(database_url(out))
    with database.reading() as connection:
        count = connection.exec_driver_sql("SELECT count(*) FROM outputs").scalar_one()
    database.close()
    return count


STEP_SCRIPT = """
import sys, time, tracemalloc
from pathlib import Path
from visuels.planning.plan import plan_render
from visuels.planning.request import Selection
from visuels.record import manifest
from visuels.record.database import Database, database_url

campaign, out, step, communes = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
plan = plan_render(campaign, out, Selection(max_communes=int(communes) if communes != "all" else None))
database = Database(database_url(out))
slug, name, keys = plan.campaign_slug, plan.campaign_name, set(plan.campaign_keys)


def run():
    if step == "plan":  # what every run does first: the campaign expanded into its jobs
        plan_render(campaign, out, Selection(max_communes=int(communes) if communes != "all" else None))
    elif step == "approved":
        from visuels.review.decisions import sync_approved
        sync_approved(database, out, slug)
    elif step == "checkpoint":
        from visuels.marking.checkpoints import write_checkpoint
        from visuels.marking.keys import signing_files
        write_checkpoint(database, out, signing_files())
    elif step == "reports":
        from visuels.inputs.charter import load_charter
        from visuels.review.report import write_reports
        write_reports(database, out, plan, load_charter(plan.setup.charter_path))
    elif step == "manifest":
        manifest.write_manifest_json(database, out, slug, name, keys)
    elif step == "manifest_check":
        assert manifest.manifest_is_up_to_date(database, out, slug, name, keys), "manifest.json is behind"
    elif step == "review_frozen":  # what a render run asking for review records
        from visuels.review.decisions import freeze_review
        assert len(freeze_review(out, slug, "benchmark", [job.key for job in plan.jobs])) == len(keys)
    elif step == "review_listing":  # the review's records read (contact sheet, studio, applying a decision)
        from visuels.review.decisions import review_listing
        assert len(review_listing(out, slug, sorted(keys))) == len(keys)


def prepare():
    if step == "review_frozen":  # the pictures the step froze before are free again
        from visuels.review.decisions import unfreeze_review
        unfreeze_review(out, "benchmark")


prepare()
started = time.perf_counter()
run()
elapsed = time.perf_counter() - started
prepare()
tracemalloc.start()  # again, traced: the most the step holds at once
run()
prepare()
print(f"{elapsed:.2f} {tracemalloc.get_traced_memory()[1] / 2**20:.0f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", default="76", help="an INSEE region code (default: 76, Occitanie)")
    parser.add_argument("--communes", type=int, help="only the region's first N communes")
    parser.add_argument("--folder", type=Path, help="made there and kept; made already: measured again")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=STEPS, help="only these steps (default: all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.folder or Path(scratch)
        os.environ["VISUELS_KEYS_DIR"] = str(folder / "keys")
        campaign, out = folder / "campaign.yaml", folder / "outputs"
        if not out.is_dir():
            from visuels.marking.keys import init_local_chain

            init_local_chain(folder / "keys")
            make_campaign(folder, args.region)
            started = time.perf_counter()
            render_one_commune(campaign, out, "Sète")
            print(f"one commune rendered for real: {time.perf_counter() - started:.0f} s")
            copy_records(campaign, out, args.communes)
        pictures = recorded(out)
        print(f"{pictures:,} pictures recorded")
        communes = str(args.communes) if args.communes else "all"
        print("| step | time | memory at its peak (Python's) |\n|---|---|---|")
        for step in args.steps:
            result = subprocess.run(
                [sys.executable, "-c", STEP_SCRIPT, str(campaign), str(out), step, communes],
                capture_output=True,
                text=True,
            )
            if result.returncode:
                sys.exit(result.stderr[-3000:])
            seconds, megabytes = result.stdout.split()
            print(f"| {step} | {float(seconds):.1f} s | {float(megabytes):,.0f} MB |", flush=True)
        keys = [f"{number:064x}" for number in range(pictures)]  # job keys are 64 hex digits
        as_keys, as_batch = json.dumps({"keys": keys}), json.dumps({"batch": "0" * 36})
        print(f"review run's parameters: {len(as_keys) / 1e6:.1f} MB as job keys, {len(as_batch)} bytes as a batch id")
        size = next(out.glob("*/manifest.json")).stat().st_size
        print(f"manifest.json: {size / 1e6:.0f} MB, {size / pictures / 1e3:.1f} KB a picture")


if __name__ == "__main__":
    main()
