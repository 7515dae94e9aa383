"""One key visual per commune and audience, declined to every format (campaign ``format_mode:
key_visual``): planning (what is cropped, what is outpainted, the seed and size they share),
generation on the demo model (the key visual kept where a format shows it), and a rendered
campaign's records (ledger parent, C2PA ingredient, the report's series)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from visuels.errors import CampaignError
from visuels.inputs.campaign import load_campaign
from visuels.inputs.formats import FORMAT_PRESETS
from visuels.models import generation
from visuels.models.generation import SEAM_PX, key_visual_box
from visuels.models.host import ModelHost
from visuels.models.reference import describe_model
from visuels.planning.jobs import CROP_MIN_SHARE, batches, expand_jobs

from tests.helpers import render_now, write_small_campaign

# The key visual where a format shows it, against the key visual resized to that place: the same
# pixels but for the resampling, so at least this PSNR (measured: 53-55 dB on the demo model).
KEPT_PSNR_DB = 38.0


def psnr(first: np.ndarray, second: np.ndarray) -> float:
    error = np.mean((first.astype(np.float64) - second.astype(np.float64)) ** 2)
    return math.inf if error == 0 else 10 * math.log10(255**2 / error)


def key_visual_campaign(folder: Path, **fields: object) -> Path:
    """Castelnau (no photos) for residents in French and English, in four formats declined from the A3 poster."""
    defaults: dict[str, object] = {
        "format_mode": "key_visual",
        "key_visual_format": "poster_a3",
        "formats": ["poster_a3", "story", "instagram_square", "web_banner"],
        "communes": {"file": "charter/communes.csv", "names": ["Castelnau-d'Estrétefonds"]},
        "languages": ["fr", "en"],
        "audiences": {
            "residents": {
                "prompt": "local families",
                "headline": {"fr": "Bel été", "en": "Happy summer"},
                "call_to_action": {"fr": "solane.example", "en": "solane.example/en"},
            }
        },
        "steps": 2,
    }
    return write_small_campaign(folder / "campaign.yaml", **(defaults | fields))


def test_formats_share_the_key_visuals_seed_and_size_and_are_cropped_or_outpainted(charter_dir: Path) -> None:
    campaign = load_campaign(key_visual_campaign(charter_dir.parent))
    model = describe_model(campaign.model)
    jobs = expand_jobs(campaign, model, "float32")
    by = {(job.format, job.language): job for job in jobs}
    master = by["poster_a3", "fr"]
    assert master.key_visual is None and master.hires is not None  # generated as in native mode
    for (format_name, language), job in by.items():
        assert job.seed == master.seed and job.hires == master.hires
        assert (job.generation_width, job.generation_height) == (master.generation_width, master.generation_height)
        if format_name == "poster_a3":
            continue
        parent = by["poster_a3", language]
        assert job.key_visual is not None and job.key_visual.master_job == parent.key
        key_aspect = master.generation_width / master.generation_height
        share = min(FORMAT_PRESETS[format_name].aspect / key_aspect, key_aspect / FORMAT_PRESETS[format_name].aspect)
        assert job.key_visual.method == ("crop" if share >= CROP_MIN_SHARE else "outpaint")
    assert by["story", "fr"].key_visual.method == "crop"  # A3 -> 9:16 keeps 80 % of the width
    assert by["instagram_square", "fr"].key_visual.method == "outpaint"
    assert by["web_banner", "fr"].key_visual.method == "outpaint"
    # One batch holds the key visual's eight jobs (4 formats x 2 languages): one picture to generate.
    assert [len(batch) for batch in batches(jobs, 1)] == [8]


def test_a_native_campaign_keeps_its_keys_and_a_key_visual_format_must_be_one_of_its_formats(
    charter_dir: Path,
) -> None:
    path = write_small_campaign(charter_dir.parent / "native.yaml")
    campaign = load_campaign(path)
    model = describe_model(campaign.model)
    before = [job.key for job in expand_jobs(campaign, model, "float32")]
    explicit = load_campaign(write_small_campaign(charter_dir.parent / "explicit.yaml", format_mode="native"))
    assert [job.key for job in expand_jobs(explicit, model, "float32")] == before
    declined = load_campaign(write_small_campaign(charter_dir.parent / "declined.yaml", format_mode="key_visual"))
    assert {job.key for job in expand_jobs(declined, model, "float32")} != set(before)
    wrong = write_small_campaign(
        charter_dir.parent / "wrong.yaml", format_mode="key_visual", key_visual_format="poster_a3"
    )
    with pytest.raises(CampaignError, match=r"key_visual_format.*not one of the campaign's formats"):
        load_campaign(wrong)


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_every_format_shows_the_key_visual_and_the_outpainted_area_is_drawn_once_per_picture(
    charter_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = load_campaign(key_visual_campaign(charter_dir.parent, photos=None))
    jobs = expand_jobs(campaign, describe_model(campaign.model), "float32")
    first_passes: list[int] = []
    paintings: list[int] = []
    real_generate, real_outpaint = generation.generate, generation.outpaint

    def counted_generate(pipeline, batch, *rest):
        first_passes.append(len(batch))
        return real_generate(pipeline, batch, *rest)

    def counted_outpaint(pipeline, batch, *rest):
        paintings.append(len(batch))
        return real_outpaint(pipeline, batch, *rest)

    monkeypatch.setattr("visuels.models.host.generate", counted_generate)
    monkeypatch.setattr(generation, "outpaint", counted_outpaint)
    host = ModelHost(torch.device("cpu"))
    pictures = host.generate_pictures(campaign.model, torch.float32, None, jobs)
    assert first_passes == [1] and sorted(paintings) == [1, 1]  # one key visual; square and banner once each
    by = {(job.format, job.language): picture for job, picture in zip(jobs, pictures, strict=True)}
    key_visual = by["poster_a3", "fr"].pixels
    assert by["poster_a3", "fr"].key_visual is None
    assert np.array_equal(by["story", "fr"].pixels, key_visual)  # a crop: post-processing crops the key visual
    assert np.array_equal(by["story", "en"].pixels, key_visual)
    kept = {}
    for format_name in ("instagram_square", "web_banner"):
        declined = by[format_name, "fr"]
        assert np.array_equal(declined.key_visual, key_visual)
        assert np.array_equal(declined.pixels, by[format_name, "en"].pixels)  # one picture in both languages
        height, width = declined.pixels.shape[:2]
        assert abs(width / height - FORMAT_PRESETS[format_name].aspect) < 0.05
        left, top, inner_width, inner_height = key_visual_box((key_visual.shape[1], key_visual.shape[0]), width, height)
        inside = declined.pixels[top : top + inner_height, left : left + inner_width]
        resized = np.asarray(Image.fromarray(key_visual).resize((inner_width, inner_height), Image.Resampling.BOX))
        core = (slice(SEAM_PX, -SEAM_PX), slice(SEAM_PX, -SEAM_PX))
        kept[format_name] = psnr(inside[core], resized[core])
        assert kept[format_name] >= KEPT_PSNR_DB, kept
        # The added area went through the model: not the stretched, blurred edges it started from.
        added = np.ones((height, width), bool)
        added[top : top + inner_height, left : left + inner_width] = False
        canvas = generation._outpaint_inputs(key_visual, width, height)[0]
        assert not np.array_equal(declined.pixels[added], canvas[added])
    # The square and the banner overlap where both show the key visual: the same picture there.
    square, banner = by["instagram_square", "fr"].pixels, by["web_banner", "fr"].pixels
    boxes = [key_visual_box((key_visual.shape[1], key_visual.shape[0]), *p.shape[1::-1]) for p in (square, banner)]
    size = (min(box[2] for box in boxes), min(box[3] for box in boxes))
    insides = [
        np.asarray(Image.fromarray(p[top : top + h, left : left + w]).resize(size, Image.Resampling.BOX))
        for p, (left, top, w, h) in zip((square, banner), boxes, strict=True)
    ]
    assert (
        psnr(insides[0][SEAM_PX:-SEAM_PX, SEAM_PX:-SEAM_PX], insides[1][SEAM_PX:-SEAM_PX, SEAM_PX:-SEAM_PX])
        >= KEPT_PSNR_DB
    )
    # Deterministic per job: the same pictures again.
    again = host.generate_pictures(campaign.model, torch.float32, None, jobs[:4])
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(again, pictures[:4], strict=True))


@pytest.mark.integration
def test_a_key_visual_campaign_records_each_formats_key_visual_and_the_report_shows_the_series(
    charter_dir: Path, tmp_path: Path, renderer
) -> None:
    from visuels.marking.c2pa_manifest import read_manifest_state
    from visuels.planning.plan import plan_render
    from visuels.record import ledger
    from visuels.record.database import Database, database_url
    from visuels.review.publish import finish_render

    campaign = key_visual_campaign(charter_dir.parent, languages=["fr"], audiences={"residents": "local families"})
    out = tmp_path / "outputs"
    plan = plan_render(campaign, out)
    exported = render_now(renderer, plan, out)
    assert len(exported) == 4 and all(item.compliance.passed for item in exported)
    master = next(item for item in exported if item.job.format == "poster_a3")
    database = Database(database_url(out))
    try:
        for item in exported:
            row = ledger.by_job_key(database, item.job.key)
            state = read_manifest_state(out / item.job.relative_path, None)
            if item is master:
                assert row["key_visual"] is None and state.key_visual is None
                continue
            assert row["key_visual"] == master.job.key  # its parent: the key visual's own file
            assert ledger.by_job_key(database, row["key_visual"])["file"] == master.job.relative_path
            how = "cropped" if item.job.key_visual.method == "crop" else "outpainted"
            assert state.key_visual.startswith(f"Key visual: {how} from the poster_a3 key visual")
            assert state.source_type.endswith("trainedAlgorithmicMedia")  # generated, all of it
        assert ledger.verify_chain(database)[1] is None
    finally:
        database.close()
    reports = finish_render(plan, out)
    html = reports.html.read_text(encoding="utf-8")
    assert html.count('class="series"') == 1 and html.count("du visuel clé (poster_a3)") == 3
