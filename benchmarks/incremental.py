"""A no-op nightly re-run: N communes x 4 formats whose outputs all exist already.

    .venv/bin/python benchmarks/incremental.py [--communes 4500 35000]

Makes a communes CSV of N synthetic communes, a campaign over them (1 audience, 4 formats),
pre-made outputs and their records in the database of record; then times planning in-process
(load and check everything, expand and key every job, find what is done) and the whole
`visuels render` command. Targets: 4,500 communes (Occitanie) <= 10 s, 35,000 (France) <= 60 s.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAND_IN_CHECK = {
    "palette_before": 0.4,
    "palette_after": 0.8,
    "logo_corner": "top_right",
    "logo_variant": "light",
    "logo_contrast": 5.0,
    "logo_clear_zone": True,
    "label_text_px": 24,
    "label_contrast": 11.8,
    "text_px": 97,
    "text_lines": 1,
    "text_contrast": 8.9,
    "text_plate": False,
    "text_overflow": False,
    "collisions": [],
    "passed": True,
    "reasons": [],
}


def make_campaign(folder: Path, communes: int) -> Path:
    departments = [f"{number:02d}" for number in range(1, 96) if number != 20]
    with (folder / "communes.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["insee", "name", "department", "landscapes", "landmarks"])
        for index in range(communes):
            department = departments[index % len(departments)]
            number = index // len(departments) + 1  # numbered within the department: unique codes
            writer.writerow([f"{department}{number:03d}", f"Commune-{index:04d}", department, "village", "église"])
    campaign = folder / "campaign.yaml"
    campaign.write_text(
        f"""
name: Nuit complète
charter: {REPO / "brand_assets" / "solane" / "charter.yaml"}
communes: {{file: communes.csv}}
prompt: "poster of {{commune}}, {{landmark}}, {{season}}"
season: winter
audiences: {{residents: families}}
formats: [instagram_square, story, web_banner, poster_a3]
""",
        encoding="utf-8",
    )
    return campaign


def record_outputs(campaign: Path, out: Path) -> None:
    """Stand-in files for every job, recorded as a run would have recorded them."""
    from visuels.planning.plan import plan_render
    from visuels.record import manifest
    from visuels.record.database import Database, database_url

    plan = plan_render(campaign, out)
    database = Database(database_url(out))
    with database.transaction() as connection:
        for job in plan.jobs:
            path = out / job.relative_path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"stand-in")
            entry = {"file": job.relative_path, "size": 8, "sha256": "", "watermark": job.key[:16], "created": ""}
            entry |= {"thumbnail": f"{job.campaign}/thumbnails/{job.key[:12]}.jpg", "ledger_id": 0}
            entry |= {"compliance": STAND_IN_CHECK, "inputs": job.model_dump(exclude={"key", "relative_path"})}
            manifest.add(connection, job.key, job.campaign, entry)
    database.close()


def no_op_night(communes: int) -> None:
    from visuels.marking.keys import init_local_chain
    from visuels.planning.plan import plan_render

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        os.environ["VISUELS_KEYS_DIR"] = str(folder / "keys")
        init_local_chain(folder / "keys")
        campaign = make_campaign(folder, communes)
        out = folder / "outputs"
        record_outputs(campaign, out)

        started = time.perf_counter()
        again = plan_render(campaign, out)
        planning = time.perf_counter() - started
        print(f"{len(again.jobs):,} jobs, {len(again.pending)} to render; planning in-process: {planning:.1f} s")

        script = Path(sys.executable).parent / "visuels"
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        started = time.perf_counter()
        result = subprocess.run(
            [str(script), "render", str(campaign), "--output-dir", str(out)],
            capture_output=True,
            text=True,
            env=environment,
        )
        whole = time.perf_counter() - started
        tail = result.stdout.strip().splitlines()[-2:] if result.stdout else result.stderr.strip().splitlines()[-3:]
        print(f"`visuels render` no-op: {whole:.1f} s (exit {result.returncode})")
        print("\n".join(tail))
        if result.returncode:
            print(result.stderr[-3000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--communes", type=int, nargs="+", default=[4500, 35000])
    for communes in parser.parse_args().communes:
        print(f"\n{communes:,} communes x 4 formats")
        no_op_night(communes)


if __name__ == "__main__":
    main()
