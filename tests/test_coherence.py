"""Campaign coherence: an output whose colours stray from the campaign's fixed baseline is flagged
and reviewed first; the baseline does not move when other communes are rendered."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from visuels.cli import main as cli
from visuels.engine.renderer import Renderer
from visuels.inputs.charter import load_charter
from visuels.planning.plan import plan_render
from visuels.planning.request import Selection
from visuels.postprocess.coherence import (
    BASELINE_FILE,
    Coherence,
    StyleSignature,
    assess_campaign,
    campaign_baseline,
    new_baseline,
    read_baseline,
    style_distances,
    style_signature,
    write_coherence,
)
from visuels.review.decisions import review_listing
from visuels.review.publish import finish_render
from visuels.review.report import review_order

from tests.helpers import render_now


def _shift_colours(image: Image.Image) -> Image.Image:
    """The same picture with its hues turned: red becomes green, green blue, blue red."""
    pixels = np.asarray(image.convert("RGB"))
    return Image.fromarray(np.ascontiguousarray(pixels[..., [2, 0, 1]]))


@pytest.mark.slow
def test_coherence_flags_the_output_whose_colours_were_shifted(
    make_campaign: Callable[..., Path], tmp_path: Path, renderer: Renderer
) -> None:
    out = tmp_path / "outputs"
    # From text only: the demo model's pictures from a photo and from text differ in style (see the report).
    plan = plan_render(make_campaign(audiences={"a": "families", "b": "students"}, steps=2, photos=None), out)
    exported = render_now(renderer, plan, out)
    charter = load_charter(plan.setup.charter_path)
    palette = tuple(colour.rgb for colour in charter.spec.palette)
    signatures = {item.job.key: item.compliance.style for item in exported}
    baseline = new_baseline(list(signatures.values()), "first report")
    assessed = assess_campaign(signatures, charter, baseline)
    print({key[:8]: value.distance for key, value in assessed.items()})
    assert not any(value.outlier for value in assessed.values())  # one campaign, one style

    shifted = exported[3]
    with Image.open(out / shifted.job.relative_path) as picture:
        signatures[shifted.job.key] = style_signature(_shift_colours(picture), palette)
    assessed = assess_campaign(signatures, charter, baseline)
    print("shifted:", assessed[shifted.job.key])
    assert [key for key, value in assessed.items() if value.outlier] == [shifted.job.key]
    limit = charter.spec.coherence.max_distance
    others = max(value.distance for key, value in assessed.items() if key != shifted.job.key)
    assert others < limit < assessed[shifted.job.key].distance


@pytest.mark.slow
def test_the_report_and_the_review_list_the_outlier_first(
    make_campaign: Callable[..., Path], tmp_path: Path, renderer: Renderer
) -> None:
    out = tmp_path / "outputs"
    plan = plan_render(make_campaign(steps=2), out)
    exported = render_now(renderer, plan, out)
    finish_render(plan, out)
    folder = out / plan.campaign_slug
    recorded = json.loads((folder / "coherence.json").read_text(encoding="utf-8"))
    assert set(recorded) == {item.job.key for item in exported}
    # One output far from the rest (as the first test measures a shifted one): listed first.
    outlier = exported[-1].job
    assessed = {key: Coherence.model_validate(value) for key, value in recorded.items()}
    assessed[outlier.key] = Coherence(distance=55.0, reference_distance=80.0, outlier=True)
    write_coherence(folder, assessed)
    listing = review_listing(out, plan.campaign_slug, [item.job.key for item in exported])
    first = next(iter(listing.values()))
    assert first["key"] == outlier.key and [str(reason) for reason in first["attention"]] == [
        "off the campaign's style (distance 55.0)"
    ]
    cards = [
        {"outlier": False, "distance": 3.0, "passed": True, "flags": [], "name": "ok"},
        {"outlier": False, "distance": 4.0, "passed": True, "flags": ["Flagged"], "name": "flagged"},
        {"outlier": False, "distance": 2.0, "passed": False, "flags": [], "name": "failing"},
        {"outlier": True, "distance": 31.0, "passed": True, "flags": ["Off"], "name": "near"},
        {"outlier": True, "distance": 45.0, "passed": True, "flags": ["Off"], "name": "far"},
    ]
    assert [card["name"] for card in review_order(cards)] == ["far", "near", "failing", "flagged"]


@pytest.mark.slow
def test_the_baseline_stays_when_other_communes_are_rendered_until_the_designer_fixes_it(
    make_campaign: Callable[..., Path], tmp_path: Path, renderer: Renderer, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "outputs"
    campaign = make_campaign(steps=2, photos=None)  # 2 pictures a commune
    first = plan_render(campaign, out, Selection(communes=["Sète"]))
    render_now(renderer, first, out)
    finish_render(first, out)
    folder = out / first.campaign_slug
    fixed = (folder / BASELINE_FILE).read_text(encoding="utf-8")
    assert read_baseline(folder).fixed_by == "first report" and read_baseline(folder).pictures == 2
    before = json.loads((folder / "coherence.json").read_text(encoding="utf-8"))

    # Another commune rendered: the first pictures keep their distances, the baseline its file.
    both = plan_render(campaign, out)
    render_now(renderer, both, out)
    finish_render(both, out)
    after = json.loads((folder / "coherence.json").read_text(encoding="utf-8"))
    assert len(after) == 4 and {key: after[key] for key in before} == before
    assert (folder / BASELINE_FILE).read_text(encoding="utf-8") == fixed
    report = (folder / "report.html").read_text(encoding="utf-8")
    assert "la médiane des 2 images de son premier rapport, fixée le" in report

    # The designer fixes it again from the other commune's pictures: now measured against those.
    assert cli(["baseline", str(campaign), "--communes", "Castelnau-d'Estrétefonds", "--output-dir", str(out)]) == 0
    said = capsys.readouterr().out
    assert "fixed from 2 pictures" in said and "off-tone" in said and "report.html" in said
    refixed = read_baseline(folder)
    assert refixed.fixed_by == "designer" and refixed.pictures == 2
    again = json.loads((folder / "coherence.json").read_text(encoding="utf-8"))
    assert {key: again[key]["distance"] for key in before} != {key: before[key]["distance"] for key in before}
    assert "la médiane de 2 images choisies par la graphiste" in (folder / "report.html").read_text(encoding="utf-8")

    # A commune with nothing recorded: one line, exit code 2, the baseline kept.
    assert cli(["baseline", str(campaign), "--communes", "Collioure", "--output-dir", str(out)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert read_baseline(folder) == refixed


def test_a_damaged_baseline_file_is_fixed_again_and_a_sound_one_is_kept(tmp_path: Path) -> None:
    signature = StyleSignature(lab_mean=[50.0, 0.0, 10.0], lab_spread=[5.0, 5.0, 5.0], palette=[0.5, 0.5])
    first = campaign_baseline(tmp_path, [signature])
    assert first is not None and first.fixed_by == "first report"
    other = StyleSignature(lab_mean=[20.0, 0.0, 0.0], lab_spread=[1.0, 1.0, 1.0], palette=[1.0, 0.0])
    assert campaign_baseline(tmp_path, [other]) == first  # kept: other pictures do not move it
    (tmp_path / BASELINE_FILE).write_text('{"signature": {"lab_mean": [1', encoding="utf-8")  # cut short
    again = campaign_baseline(tmp_path, [other])
    assert again is not None and again.signature == other and read_baseline(tmp_path) == again
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".tmp")]


def test_style_distance_is_the_formula_the_module_states() -> None:
    """|Δ mean Lab| + ½ |Δ spread Lab| + 100 × half the L1 distance of the palette shares, for
    each signature at once."""
    to = StyleSignature(lab_mean=[50.0, 0.0, 0.0], lab_spread=[10.0, 10.0, 10.0], palette=[0.5, 0.5])
    signatures = [
        to,
        StyleSignature(lab_mean=[53.0, 4.0, 0.0], lab_spread=[10.0, 10.0, 10.0], palette=[0.5, 0.5]),
        StyleSignature(lab_mean=[50.0, 0.0, 0.0], lab_spread=[16.0, 18.0, 10.0], palette=[0.8, 0.2]),
    ]
    assert style_distances(signatures, to).tolist() == pytest.approx([0.0, 5.0, 0.5 * 10.0 + 100.0 * 0.3])
