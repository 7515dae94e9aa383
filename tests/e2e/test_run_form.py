"""The UI shows render-campaign's parameters as a form with dropdowns, not as raw JSON."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from PIL import Image

from pipelines.formats import FORMAT_PRESETS
from tests.conftest import SAMPLE_CAMPAIGN
from tests.e2e.run_form import find_chromium, page_dom, screenshot, served_run_form

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (apt-get install chromium)"),
]


class _Dropdowns(HTMLParser):
    """The option values of every <select> of a page, one set per select."""

    def __init__(self) -> None:
        super().__init__()
        self.options: list[set[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "select":
            self.options.append(set())
        elif tag == "option" and self.options:
            self.options[-1].add(dict(attrs).get("value") or "")


def test_the_run_form_has_dropdowns_and_descriptions(tmp_path: Path) -> None:
    browser = find_chromium()
    assert browser is not None
    with served_run_form() as page:
        dom = page_dom(browser, page)
        screenshot(browser, page, tmp_path / "run-form.png")

    dropdowns = _Dropdowns()
    dropdowns.feed(dom)
    campaigns = {f"campaigns/{path.name}" for path in SAMPLE_CAMPAIGN.parent.glob("*.yaml")}
    audiences = set(yaml.safe_load(SAMPLE_CAMPAIGN.read_text(encoding="utf-8"))["audiences"])
    for wanted in (campaigns, audiences, set(FORMAT_PRESETS), {"auto", "cuda", "mps", "cpu"}):
        assert any(wanted <= options for options in dropdowns.options), (wanted, dropdowns.options)
    for description in ("Only these communes", "Denoising steps", "Strength of the campaign's LoRA"):
        assert description in dom
    with Image.open(tmp_path / "run-form.png") as shot:
        assert shot.size == (1280, 2200)
