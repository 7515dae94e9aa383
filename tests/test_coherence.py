"""Campaign coherence: an output whose colours stray from the campaign is flagged and reviewed first."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from visuels.engine.renderer import Renderer
from visuels.inputs.charter import load_charter
from visuels.planning.plan import plan_render
from visuels.postprocess.coherence import Coherence, assess_campaign, style_signature, write_coherence
from visuels.review.decisions import review_listing
from visuels.review.publish import finish_render
from visuels.review.report import review_order

from tests.conftest import render_now


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
    assessed = assess_campaign(signatures, charter)
    print({key[:8]: value.distance for key, value in assessed.items()})
    assert not any(value.outlier for value in assessed.values())  # one campaign, one style

    shifted = exported[3]
    with Image.open(out / shifted.job.relative_path) as picture:
        signatures[shifted.job.key] = style_signature(_shift_colours(picture), palette)
    assessed = assess_campaign(signatures, charter)
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
    assert first["key"] == outlier.key and first["attention"] == ["off the campaign's style (distance 55.0)"]
    cards = [
        {"outlier": False, "distance": 3.0, "passed": True, "flags": [], "name": "ok"},
        {"outlier": False, "distance": 4.0, "passed": True, "flags": ["Flagged"], "name": "flagged"},
        {"outlier": False, "distance": 2.0, "passed": False, "flags": [], "name": "failing"},
        {"outlier": True, "distance": 31.0, "passed": True, "flags": ["Off"], "name": "near"},
        {"outlier": True, "distance": 45.0, "passed": True, "flags": ["Off"], "name": "far"},
    ]
    assert [card["name"] for card in review_order(cards)] == ["far", "near", "failing", "flagged"]
