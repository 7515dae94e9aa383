"""The studio in headless Chromium: a review grid that resumes a real paused run, and a retouch made by brush."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from visuels.engine.renderer import Renderer
from visuels.planning.plan import plan_render
from visuels.review.publish import finish_render

from tests.e2e.run_form import find_chromium
from tests.e2e.servers import served
from tests.helpers import SAMPLE_CHARTER_DIR, render_now

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module", autouse=True)
def prefect_server() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def outputs(make_campaign: Callable[..., Path], tmp_path: Path, renderer: Renderer) -> tuple[Path, str, list[str]]:
    out = tmp_path / "outputs"
    plan = plan_render(make_campaign(steps=2), out)
    exported = render_now(renderer, plan, out)
    finish_render(plan, out)
    return out, plan.campaign_slug, [item.job.key for item in exported]


@pytest.fixture
def studio_url(outputs: tuple[Path, str, list[str]]) -> Iterator[str]:
    """The studio on a free port of 127.0.0.1, serving ``outputs``, answering reviews through Prefect."""
    from visuels.flows.studio_reviews import PrefectReviews
    from visuels.inputs.charter import load_charter
    from visuels.marking.keys import signing_files
    from visuels.record.database import Database, database_url
    from visuels.studio.app import Studio, create_app

    out = outputs[0]
    studio = Studio(
        output_root=out,
        database=Database(database_url(out)),
        charter=load_charter(SAMPLE_CHARTER_DIR),
        signing=signing_files(),
        device="cpu",
        reviews=PrefectReviews(),
    )
    with served(create_app(studio)) as url:
        yield url
    studio.database.close()


ALL_IMAGES_SHOWN = (
    "[...document.images].length > 0 && [...document.images].every(i => i.complete && i.naturalWidth > 0)"
)


def test_the_review_grid_rejects_the_clicked_picture_and_resumes_the_run(
    outputs: tuple[Path, str, list[str]], studio_url: str, tmp_path: Path
) -> None:
    from visuels.flows.review_campaign import review_campaign
    from visuels.review.decisions import review_listing

    from tests.e2e.browser import Browser
    from tests.test_flow import wait_until_paused

    out, slug, keys = outputs
    result: dict = {}
    reviewer = threading.Thread(
        target=lambda: result.update(outcome=review_campaign(campaign_slug=slug, keys=keys, output_dir=str(out)))
    )
    reviewer.start()
    try:
        run_id = wait_until_paused("review-campaign")
        browser_path = find_chromium()
        assert browser_path is not None
        with Browser(browser_path) as browser:
            # One picture a page (``?per_page=``): the pages step through every picture, and a
            # decision stays with its picture when its page is left.
            # In French first, as its designer may read it: none decided yet, counted in French.
            browser.goto(f"{studio_url}/review/{run_id}?lang=fr")
            browser.wait_for(ALL_IMAGES_SHOWN)
            browser.click_at(*browser.centre_of("#submit"))
            left = browser.wait_for("document.getElementById('status').textContent")
            assert left.startswith(f"{len(keys)} images pas encore décidées : approuvez-les"), left
            assert (
                browser.evaluate("document.getElementById('shown').textContent")
                == f"{len(keys)} images affichées sur {len(keys)}"
            )
            browser.goto(f"{studio_url}/review/{run_id}?lang=en&per_page=1")
            visible = "[...document.querySelectorAll('.card')].filter(c => c.style.display !== 'none')"
            page = "document.getElementById('page').textContent"
            assert browser.wait_for(f"{page} === 'Page 1 of {len(keys)}' && {page}")
            assert browser.evaluate(f"{visible}.length") == 1
            browser.evaluate(f"{visible}[0].querySelector('.reject').click()")
            on_first_page = browser.evaluate(f"{visible}[0].dataset.code")
            browser.click_at(*browser.centre_of("#next"))
            assert browser.evaluate(page) == f"Page 2 of {len(keys)}"
            assert browser.evaluate(f"{visible}[0].dataset.code") != on_first_page
            assert browser.evaluate("document.querySelectorAll('.card').length") == 1  # only the page's cards are made
            browser.click_at(*browser.centre_of("#previous"))
            assert browser.evaluate(f"{visible}[0].classList.contains('rejected')")

            browser.goto(f"{studio_url}/review/{run_id}")
            browser.wait_for(ALL_IMAGES_SHOWN)
            assert not browser.evaluate("document.getElementById('pager').offsetParent")  # one page: no pager
            assert browser.evaluate("document.querySelectorAll('.card').length") == len(keys)
            first_code = browser.evaluate("document.querySelector('.card').dataset.code")
            browser.click_at(*browser.centre_of(".card img"))
            assert browser.evaluate("document.querySelector('.card').classList.contains('rejected')")
            browser.evaluate("document.querySelector('.card textarea').value = 'logo hidden'")
            browser.evaluate("document.getElementById('reviewer').value = 'Léa'")
            # The filters hide the other cards, and keep every decision.
            status_filter = "document.querySelector('[data-filter=status]')"
            browser.evaluate(f"{status_filter}.value = 'rejected'; {status_filter}.dispatchEvent(new Event('change'))")
            visible = f"{visible}.length"
            assert browser.evaluate(visible) == 1
            shown = browser.evaluate("document.getElementById('shown').textContent")
            assert shown == f"1 of {len(keys)} pictures shown"
            browser.evaluate(f"{status_filter}.value = ''; {status_filter}.dispatchEvent(new Event('change'))")
            assert browser.evaluate(visible) == len(keys)
            # Nothing is approved unless said: sending now is refused, then "approve the rest".
            browser.click_at(*browser.centre_of("#submit"))
            assert "not decided yet" in browser.wait_for("document.getElementById('status').textContent")
            browser.click_at(*browser.centre_of("#approve-rest"))
            browser.screenshot(tmp_path / "review.png")
            browser.click_at(*browser.centre_of("#submit"))
            sent = "document.getElementById('status').textContent"
            assert "Sent" in browser.wait_for(f"{sent}.startsWith('Sent') && {sent}")
    finally:
        reviewer.join(timeout=120)
    outcome = result["outcome"]
    listing = review_listing(out, slug, keys)
    rejected_name = next(name for name, entry in listing.items() if entry["key"].startswith(first_code))
    assert outcome.rejected == [rejected_name]
    assert sorted(outcome.approved) == sorted(name for name in listing if name != rejected_name)
    with Image.open(tmp_path / "review.png") as shot:
        assert shot.width >= 1000


def test_the_retouch_page_paints_a_mask_and_keeps_a_variant(
    outputs: tuple[Path, str, list[str]], studio_url: str, tmp_path: Path
) -> None:
    from visuels.review.decisions import review_listing

    from tests.e2e.browser import Browser

    out, slug, keys = outputs
    entry = next(iter(review_listing(out, slug, keys).values()))
    browser_path = find_chromium()
    assert browser_path is not None
    with Browser(browser_path) as browser:
        browser.goto(f"{studio_url}/retouch?file={entry['file']}")
        browser.wait_for(ALL_IMAGES_SHOWN + " && document.getElementById('mask').width > 0")
        x, y = browser.centre_of("#mask")
        browser.drag([(x - 60, y - 40), (x, y), (x + 60, y + 40)])
        # The AI label's zone is shown locked, and a stroke across it leaves it out of the mask.
        lx, ly = browser.centre_of("#locked")
        browser.drag([(lx - 30, ly), (lx + 30, ly)])
        masked_in_label = browser.evaluate(
            "(() => { const c = document.getElementById('mask');"
            " const d = c.getContext('2d').getImageData(Math.ceil(LOCKED.left * c.width),"
            " Math.ceil(LOCKED.top * c.height), Math.floor(LOCKED.width * c.width) - 1,"
            " Math.floor(LOCKED.height * c.height) - 1).data;"
            " let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; })()"
        )
        assert masked_in_label == 0
        browser.evaluate("document.getElementById('prompt').value = 'a lighthouse'")
        browser.evaluate("document.getElementById('variants').value = 2")
        browser.click_at(*browser.centre_of("#make"))
        browser.wait_for("document.querySelectorAll('.variant img').length === 2 && " + ALL_IMAGES_SHOWN)
        browser.screenshot(tmp_path / "retouch.png")
        browser.click_at(*browser.centre_of(".variant button"))
        kept = browser.wait_for("document.getElementById('kept').textContent")
    assert kept.startswith("Kept and marked"), kept
    original = out / entry["file"]
    retouched = sorted(original.parent.glob(f"{original.stem}-retouch-*{original.suffix}"))
    assert len(retouched) == 1
    before = np.asarray(Image.open(original).convert("RGB"), dtype=np.int16)
    after = np.asarray(Image.open(retouched[0]).convert("RGB"), dtype=np.int16)
    changed = (np.abs(after - before).max(axis=2) > 16).mean()
    assert 0.005 < changed < 0.5  # the brushed stroke, not the whole picture


def test_the_retouch_page_retouches_by_instruction_with_the_studios_edit_model(
    outputs: tuple[Path, str, list[str]], tmp_path: Path
) -> None:
    """A studio started with an edit model offers "by instruction": the strength goes grey, the
    brushed area is redrawn as the prompt says, and the kept variant names the edit model."""
    from visuels.inputs.charter import load_charter
    from visuels.marking.keys import signing_files
    from visuels.record.database import Database, database_url
    from visuels.review.decisions import review_listing
    from visuels.review.retouch import instruct_model
    from visuels.studio.app import Studio, create_app

    from tests.e2e.browser import Browser
    from tests.helpers import ledger_rows
    from tests.tiny_families import save_tiny_edit_model

    out, slug, keys = outputs
    edit_model = instruct_model(str(save_tiny_edit_model(tmp_path / "Qwen-Image-Edit-tiny")))
    entry = next(iter(review_listing(out, slug, keys).values()))
    database = Database(database_url(out))
    studio = Studio(out, database, load_charter(SAMPLE_CHARTER_DIR), signing_files(), "cpu", edit_model=edit_model)
    browser_path = find_chromium()
    assert browser_path is not None
    try:
        with served(create_app(studio)) as url, Browser(browser_path) as browser:
            browser.goto(f"{url}/retouch?file={entry['file']}")
            browser.wait_for(ALL_IMAGES_SHOWN + " && document.getElementById('mask').width > 0")
            mode = "document.getElementById('mode')"
            browser.evaluate(f"{mode}.value = 'instruct'; {mode}.dispatchEvent(new Event('change'))")
            assert browser.evaluate("document.getElementById('strength').disabled")
            x, y = browser.centre_of("#mask")
            browser.drag([(x - 60, y - 40), (x, y), (x + 60, y + 40)])
            browser.evaluate("document.getElementById('prompt').value = 'make the sea green'")
            browser.evaluate("document.getElementById('variants').value = 1")
            browser.click_at(*browser.centre_of("#make"))
            browser.wait_for("document.querySelectorAll('.variant img').length === 1 && " + ALL_IMAGES_SHOWN)
            browser.screenshot(tmp_path / "instruct.png")
            browser.click_at(*browser.centre_of(".variant button"))
            kept = browser.wait_for("document.getElementById('kept').textContent")
    finally:
        database.close()
    assert kept.startswith("Kept and marked"), kept
    row = ledger_rows(out)[-1]
    assert row["prompt"] == "retouch (by instruction with Qwen-Image-Edit-tiny): make the sea green"
    assert row["model_hash"] == edit_model.model_hash and row["model_licence"] == "apache-2.0"


def test_the_report_is_served_and_each_card_opens_its_full_picture(
    outputs: tuple[Path, str, list[str]], studio_url: str, tmp_path: Path
) -> None:
    from tests.e2e.browser import Browser

    _, slug, keys = outputs
    browser_path = find_chromium()
    assert browser_path is not None
    with Browser(browser_path) as browser:
        browser.goto(f"{studio_url}/files/{slug}/report.html")
        browser.wait_for(ALL_IMAGES_SHOWN)
        assert browser.evaluate("document.querySelectorAll('.card').length") == len(keys)
        assert browser.evaluate("document.querySelectorAll('h2').length") == 2  # one section per commune
        browser.screenshot(tmp_path / "report.png")
        browser.click_at(*browser.centre_of(".card img"))
        browser.wait_for("location.pathname.endsWith('.png') && document.images.length === 1")
        width = browser.evaluate("document.images[0].naturalWidth")
    assert width >= 1080  # the full-size picture, not its thumbnail
    with Image.open(tmp_path / "report.png") as shot:
        assert shot.width >= 1000


def test_the_finalize_page_finalizes_an_edit_a_render_kept(
    outputs: tuple[Path, str, list[str]], studio_url: str, tmp_path: Path
) -> None:
    """An edit saved over an output, kept beside it by a render: listed on the finalize page, and
    finalized there by its button, which then says so."""
    from visuels.review.decisions import review_listing

    from tests.e2e.browser import Browser

    out, slug, keys = outputs
    original = out / next(iter(review_listing(out, slug, keys).values()))["file"]
    with Image.open(original) as opened:
        opened.convert("RGB").rotate(180).save(original.with_name(f"{original.stem}-edited{original.suffix}"))
    browser_path = find_chromium()
    assert browser_path is not None
    with Browser(browser_path) as browser:
        browser.goto(f"{studio_url}/finalize")
        browser.wait_for("document.querySelectorAll('#kept button').length === 1")
        browser.click_at(*browser.centre_of("#kept button"))
        said = browser.wait_for(
            "document.querySelector('#kept span').className && document.querySelector('#kept span').textContent"
        )
        browser.screenshot(tmp_path / "finalize.png")
    assert said.startswith("Marked: ") and f"{original.stem}-edited-final{original.suffix}" in said, said
    assert original.with_name(f"{original.stem}-edited-final{original.suffix}").is_file()
