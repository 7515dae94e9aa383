"""A no-op nightly re-run: every commune of a region, or of France, x 4 formats whose outputs all
exist already.

    .venv/bin/python benchmarks/incremental.py [--regions 76 all]

A campaign over the real communes of the shipped COG 2026 (region 76, Occitanie: 4,446 communes;
all: 34,969), 1 audience, 4 formats, with pre-made outputs and their records in the database of
record; then times planning in-process (load and check everything, expand and key every job,
find what is done) and the whole `visuels render` command. Targets: Occitanie <= 10 s, France
<= 60 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CREATED = "2026-12-01T02:00:00+00:00"  # when the stand-ins were recorded, as their files say
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


def make_campaign(folder: Path, region: str) -> Path:
    selection = "{}" if region == "all" else f'{{regions: ["{region}"]}}'
    campaign = folder / "campaign.yaml"
    campaign.write_text(
        f"""
name: Nuit complète
charter: {REPO / "brand_assets" / "solane" / "charter.yaml"}
communes: {selection}
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
            manifest.stamp_as_exported(path, CREATED)
            entry = {"file": job.relative_path, "size": 8, "sha256": "", "watermark": job.key[:16], "created": CREATED}
            entry |= {"thumbnail": f"{job.campaign}/thumbnails/{job.key[:12]}.jpg", "ledger_id": 0}
            entry |= {"compliance": STAND_IN_CHECK, "inputs": job.model_dump(exclude={"key", "relative_path"})}
            manifest.add(connection, job.key, job.campaign, entry)
    database.close()


def no_op_night(region: str) -> None:
    from visuels.marking.keys import init_local_chain
    from visuels.planning.plan import plan_render

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        os.environ["VISUELS_KEYS_DIR"] = str(folder / "keys")
        init_local_chain(folder / "keys")
        campaign = make_campaign(folder, region)
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


def night_after_a_copy(output_root: Path) -> None:
    """What planning pays to find real outputs done after the folder was copied without its files'
    times (or written by a release that did not give them their export's): each is read whole once,
    then given its time back, and the next night costs a `stat` again."""
    from visuels.record import manifest
    from visuels.record.database import Database, database_url

    database = Database(database_url(output_root))
    slugs = [path.parent.name for path in output_root.glob(f"*/{manifest.MANIFEST_NAME}")]
    recorded = {key: row for slug in slugs for key, row in manifest.recorded_files(database, slug).items()}
    database.close()
    now = time.time()
    for row in recorded.values():
        os.utime(output_root / row.file, (now, now))  # as `cp -r` leaves them
    megabytes = sum(row.size for row in recorded.values()) / 1e6
    for night in ("after the copy", "the night after"):
        started = time.perf_counter()
        done = sum(manifest.is_done(output_root, row.file, row) for row in recorded.values())
        took = time.perf_counter() - started
        print(
            f"{night}: {done} of {len(recorded)} outputs done ({megabytes:.0f} MB) in {took:.2f} s,"
            f" {took / len(recorded) * 1000:.2f} ms an output"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", nargs="+", default=["76", "all"], help="INSEE region codes, or all")
    parser.add_argument(
        "--copied", type=Path, help="instead: an output folder of real renders, its files' times changed as a copy does"
    )
    arguments = parser.parse_args()
    if arguments.copied:
        night_after_a_copy(arguments.copied)
        return
    for region in arguments.regions:
        print(f"\nregion {region}: its communes x 4 formats")
        no_op_night(region)


if __name__ == "__main__":
    main()
