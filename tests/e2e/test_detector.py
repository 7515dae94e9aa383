"""The public detector in headless Chromium, in French and English: reached and used with the
keyboard alone, every text at WCAG AA contrast, a picture checked, the report form sent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.run_form import find_chromium
from tests.e2e.servers import served
from tests.helpers import SAMPLE_CHARTER_DIR, marked_picture

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (apt-get install chromium)"),
]

# Each text element's contrast with the background behind it (WCAG 2.1: relative luminance).
LOWEST_CONTRAST = """(() => {
  const lum = c => { const [r, g, b] = c.match(/[\\d.]+/g).slice(0, 3).map(v => v / 255)
      .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
      return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const behind = e => { for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor;
      if (!c.startsWith('rgba') || !c.endsWith(', 0)')) return c; } return 'rgb(255, 255, 255)'; };
  let lowest = [99, ''];
  for (const e of document.querySelectorAll('body *')) {
    if (![...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()) || !e.offsetParent) continue;
    const [a, b] = [lum(getComputedStyle(e).color), lum(behind(e))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < lowest[0]) lowest = [ratio, e.tagName + ': ' + e.textContent.trim().slice(0, 40)];
  }
  return lowest; })()"""


@pytest.fixture
def detector_url(signing_keys: Path, tmp_path: Path) -> Iterator[str]:
    from visuels.detector.app import DetectorService, create_app
    from visuels.inputs.charter import load_charter
    from visuels.marking.keys import TRUST_ANCHORS, detector_key
    from visuels.marking.watermark_keys import known_keys
    from visuels.record.database import database_url

    service = DetectorService(
        charter=load_charter(SAMPLE_CHARTER_DIR),
        trust_anchors=signing_keys / TRUST_ANCHORS,
        keys=known_keys(signing_keys),
        signing_key=detector_key(),
        database_url=database_url(tmp_path / "record"),
    )
    with served(create_app(service)) as url:
        yield url


def _press(browser, key: str, code: int) -> None:  # type: ignore[no-untyped-def]
    """A key pressed and released, as a person's keyboard sends it (Enter types a carriage return)."""
    typed = [("char", {"text": "\r"})] if key == "Enter" else []
    for kind, extra in [("rawKeyDown", {}), *typed, ("keyUp", {})]:
        browser.call("Input.dispatchKeyEvent", type=kind, key=key, code=key, windowsVirtualKeyCode=code, **extra)


@pytest.mark.timeout(300)
def test_the_detector_pages_in_both_languages_by_keyboard(detector_url: str, tmp_path: Path) -> None:
    from tests.e2e.browser import Browser

    picture = marked_picture(tmp_path)  # as export marks an output
    chromium = find_chromium()
    assert chromium is not None
    with Browser(chromium, width=1100, height=1300) as browser:
        for lang, verdict in (("fr", "image IA de ce déploiement"), ("en", "AI picture of this deployment")):
            browser.goto(f"{detector_url}/?lang={lang}")
            browser.wait_for("document.readyState === 'complete'")
            assert browser.evaluate("document.documentElement.lang") == lang
            assert browser.evaluate(LOWEST_CONTRAST)[0] >= 4.5, browser.evaluate(LOWEST_CONTRAST)
            # The keyboard alone: the skip link first, then on to the picture field.
            _press(browser, "Tab", 9)
            assert browser.evaluate("document.activeElement.className") == "skip"
            for _ in range(6):
                if browser.evaluate("document.activeElement.id") == "file":
                    break
                _press(browser, "Tab", 9)
            assert browser.evaluate("document.activeElement.id") == "file"
            assert browser.evaluate("document.querySelector('label[for=file]').textContent")
            browser.screenshot(tmp_path / f"detector-home-{lang}.png")
            document = browser.call("DOM.getDocument")["root"]["nodeId"]
            node = browser.call("DOM.querySelector", nodeId=document, selector="#file")
            browser.call("DOM.setFileInputFiles", nodeId=node["nodeId"], files=[str(picture)])
            _press(browser, "Tab", 9)  # to the button, then Enter sends the form
            assert browser.evaluate("document.activeElement.type") == "submit"
            _press(browser, "Enter", 13)
            browser.wait_for("document.querySelector('.verdict') !== null", timeout=120)
            assert verdict in browser.evaluate("document.querySelector('.verdict').textContent")
            assert browser.evaluate(LOWEST_CONTRAST)[0] >= 4.5, browser.evaluate(LOWEST_CONTRAST)
            browser.screenshot(tmp_path / f"detector-result-{lang}.png")
            browser.goto(f"{detector_url}/marks?lang={lang}")
            browser.wait_for("document.readyState === 'complete'")
            browser.screenshot(tmp_path / f"detector-marks-{lang}.png")
            browser.goto(f"{detector_url}/report?lang={lang}")
            browser.wait_for("document.readyState === 'complete'")
            labelled = "[...document.querySelectorAll('input,select,textarea')].every(e => e.labels.length)"
            assert browser.evaluate(labelled)
            browser.screenshot(tmp_path / f"detector-report-{lang}.png")


# How far the page reaches past the screen's right edge, in CSS pixels (0: nothing to scroll sideways).
SIDEWAYS = "document.documentElement.scrollWidth - window.innerWidth"


@pytest.mark.timeout(300)
def test_the_detector_pages_fit_a_phones_screen(detector_url: str, tmp_path: Path) -> None:
    """The public often checks a picture on the phone they saw it on: no page, the result with its
    hashes and addresses least of all, may be wider than a 360 px screen."""
    from tests.e2e.browser import Browser

    picture = marked_picture(tmp_path)
    chromium = find_chromium()
    assert chromium is not None
    with Browser(chromium, width=360, height=740) as browser:
        # Not emulated as mobile: a phone would zoom a too-wide page out (every text smaller) where
        # this layout shows it as a page that scrolls sideways, which SIDEWAYS measures.
        browser.call("Emulation.setDeviceMetricsOverride", width=360, height=740, deviceScaleFactor=1, mobile=False)
        for lang in ("fr", "en"):
            for page in ("", "marks", "report"):
                browser.goto(f"{detector_url}/{page}?lang={lang}")
                assert browser.evaluate(SIDEWAYS) <= 0, (page, lang)
            browser.goto(f"{detector_url}/?lang={lang}")
            document = browser.call("DOM.getDocument")["root"]["nodeId"]
            node = browser.call("DOM.querySelector", nodeId=document, selector="#file")
            browser.call("DOM.setFileInputFiles", nodeId=node["nodeId"], files=[str(picture)])
            browser.evaluate("document.querySelector('form').submit()")
            browser.wait_for("document.querySelector('.verdict') !== null", timeout=120)
            browser.screenshot(tmp_path / f"detector-result-phone-{lang}.png")
            assert browser.evaluate(SIDEWAYS) <= 0, lang
