"""A no-op nightly re-run: 4,500 communes x 4 formats whose outputs all exist already.

    .venv/bin/python benchmarks/incremental.py

Makes a communes CSV of 4,500 synthetic communes, a campaign over them (1 audience, 4 formats:
18,000 jobs), and pre-made outputs with their manifest; then times planning in-process
(load and check everything, expand and key every job, find what is done) and the whole
`visuels render` through the Prefect flow (server start included). Target: <= 60 s.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMUNES = 4500
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


def make_campaign(folder: Path) -> Path:
    departments = [f"{number:02d}" for number in range(1, 96) if number != 20]
    with (folder / "communes.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["insee", "name", "department", "landscapes", "landmarks"])
        for index in range(COMMUNES):
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


def main() -> None:
    from pipelines.export import manifest_path
    from pipelines.render import plan_render

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        campaign = make_campaign(folder)
        out = folder / "outputs"
        plan = plan_render(campaign, out)
        files = {}
        for job in plan.jobs:  # pre-made outputs: small stand-in files, as the manifest records them
            path = out / job.relative_path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"stand-in")
            files[job.key] = {
                "file": job.relative_path,
                "size": 8,
                "inputs": job.model_dump(),
                "thumbnail": f"{job.campaign}/thumbnails/{job.key[:12]}.jpg",
                "compliance": STAND_IN_CHECK,
            }
        manifest_path(out, plan.campaign_slug).write_text(json.dumps({"files": files}), encoding="utf-8")

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
        tail = result.stdout.strip().splitlines()[-3:] if result.stdout else result.stderr.strip().splitlines()[-3:]
        print(
            f"`visuels render` no-op, Prefect flow included: {whole:.1f} s (exit {result.returncode}; target <= 60 s)"
        )
        print("\n".join(tail))
        if result.returncode:
            print(result.stderr[-3000:])


if __name__ == "__main__":
    main()
