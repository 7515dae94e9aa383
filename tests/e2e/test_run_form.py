"""Render-campaign in the Prefect UI, used as a designer would: its run form (read, fill in,
submit), then a finished run's artifacts (progress bar, compliance table, report link, contact
sheet), each page opened in headless Chromium and saved as a screenshot."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from PIL import Image
from visuels.flows.render_campaign import render_campaign

from tests.e2e.browser import Browser
from tests.e2e.run_form import RENDER_DEPLOYMENT, deployment_id, find_chromium, served_run_form
from tests.helpers import SAMPLE_CAMPAIGN

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (apt-get install chromium)"),
]

# The form's groups and fields, designers' first, in this order; each line of the page.
LABELS = [
    "Campaign",
    "Which pictures",
    "Communes",
    "At most this many communes",
    "Audiences",
    "Formats",
    "Change for this run",
    "Model",
    "Steps",
    "Seed",
    "Charter style strength",
    "Send for review",
    "Technical settings",
    "Device",
    "Precision",
    "Pictures per model call",
    "CPU worker processes",
    "Compile the model",
    "Output folder",
    "Split above this many pictures",
]
SUBMIT = "[...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Submit').click()"
# Lines naming a field: its label, "(Optional)" unless required.
LABEL_LINE = re.compile(r"^(.+?)(?: \(Optional\))?$")


def _input_after(label: str) -> str:
    """A script that focuses the input under the field labelled ``label``."""
    return (
        "(() => { const label = [...document.querySelectorAll('*')].find(e => e.children.length === 0"
        f" && e.textContent.trim() === {json.dumps(label + ' (Optional)')});"
        " let node = label, input = null;"
        " while (node && !input) { node = node.parentElement; input = node && node.querySelector('input'); }"
        " input.scrollIntoView({block: 'center'}); input.focus(); return true; })()"
    )


def _read(api_url: str, what: str) -> list[dict]:
    request = urllib.request.Request(
        f"{api_url}/{what}/filter", data=b"{}", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _deployed_runs(api_url: str) -> list[dict]:
    """Render-campaign runs started from the form (not the nightly's scheduled ones, nor reviews)."""
    render = deployment_id(api_url, RENDER_DEPLOYMENT)
    return [run for run in _read(api_url, "flow_runs") if run["deployment_id"] == render]


@pytest.fixture(scope="module")
def run_form() -> Iterator[str]:
    """The run form's URL on a served Prefect with the project's deployments."""
    with served_run_form() as page:
        yield page


def test_the_run_form_reads_plainly_says_ranges_and_sends_no_nulls(run_form: str, tmp_path: Path) -> None:
    browser_path = find_chromium()
    assert browser_path is not None
    page, api_url = run_form, run_form.split("/deployments/")[0] + "/api"
    # A window as tall as the whole form, so that one screenshot shows all of it.
    with Browser(browser_path, 1280, 3000) as browser:
        browser.goto(page)
        browser.wait_for(f"{json.dumps(LABELS)}.every(label => document.body.innerText.includes(label))")
        text = browser.evaluate("document.body.innerText")
        browser.screenshot(tmp_path / "run-form.png")

        lines = [line.strip() for line in text.splitlines()]
        named = [LABEL_LINE.match(line).group(1) for line in lines if line.endswith("(Optional)")]  # type: ignore[union-attr]
        assert [label for label in named if label in LABELS] == LABELS[1:]  # designers' fields first
        assert not [label for label in named if "_" in label]  # no Python names
        assert "Property is type" not in text and "None" not in named  # no null switches
        for described in ("1 to 150", "0 to 2", "1 to 100,000", "0 to 64"):  # ranges said up front
            assert described in text
        dropdowns = browser.evaluate(
            "[...document.querySelectorAll('select')].map(s => [...s.options].map(o => o.value))"
        )
        campaigns = {f"campaigns/{path.name}" for path in SAMPLE_CAMPAIGN.parent.glob("*.yaml")}
        audiences = set(yaml.safe_load(SAMPLE_CAMPAIGN.read_text(encoding="utf-8"))["audiences"])
        used = {"instagram_square", "story", "web_banner", "poster_a3"}  # what the campaigns use
        for wanted in (campaigns, audiences, used, {"auto", "cuda", "mps", "cpu"}):
            assert any(wanted <= set(options) for options in dropdowns), (wanted, dropdowns)
        assert not any("poster_a3_300dpi" in options for options in dropdowns)  # no campaign uses it
        review_choices = ["as the campaign says", "yes", "no"]
        assert any(options == review_choices for options in dropdowns), dropdowns
        # Which campaigns wait for review, said where it is chosen.
        assert "As the campaign says: campaigns/ete-2027.yaml waits for a designer's approval" in text

        # Out of range: the message says the range.
        browser.evaluate(_input_after("Steps"))
        browser.call("Input.insertText", text="500")
        # Taken in before the first click: the field left (its change event) and a moment for the
        # form's own update, else a click under load could still send the defaults, a valid run.
        browser.wait_for("document.activeElement.value === '500'")
        browser.evaluate("document.activeElement.blur()")
        time.sleep(1.0)
        # The form asks the server to check the values (/api/ui/schemas/validate): slow while the
        # suite's other process renders, and under load a click can come before the form has taken
        # the value in (a CI run waited 60 s for a message that never came): click again until it
        # says it, no run ever created.
        said_500 = (
            "[...document.querySelectorAll('*')].map(e => e.children.length ? '' : e.textContent)"
            ".find(t => t.includes('500 is'))"
        )
        message, deadline = None, time.monotonic() + 90
        while not message and time.monotonic() < deadline:
            browser.evaluate(SUBMIT)
            waited = time.monotonic() + 15
            while not message and time.monotonic() < waited:
                message = browser.evaluate(said_500)
                time.sleep(0.2)
            assert not _deployed_runs(api_url)
        assert message and "500 is greater than the maximum of 150" in message
        assert not _deployed_runs(api_url)

        # Emptied again and sent: the defaults, without a null anywhere.
        browser.evaluate(_input_after("Steps"))
        browser.evaluate("document.execCommand('selectAll'); document.execCommand('delete')")
        # The form checks itself again when asked; under load the first click can come before
        # it has taken the emptied field in: click again until the run is there (once).
        deadline = time.monotonic() + 60
        while not _deployed_runs(api_url) and time.monotonic() < deadline:
            browser.evaluate(SUBMIT)
            waited = time.monotonic() + 10
            while not _deployed_runs(api_url) and time.monotonic() < waited:
                time.sleep(0.5)
        browser.wait_for("location.href.includes('tab=Runs') || location.href.includes('/flow-run/')", timeout=30)
        (run,) = _deployed_runs(api_url)
    assert "null" not in json.dumps(run["parameters"])
    parameters = render_campaign.validate_parameters(run["parameters"])
    assert parameters["overrides"].steps is None and parameters["run"].shard_size == 2000  # the deployment's
    assert parameters["review"] == "as the campaign says"
    with Image.open(tmp_path / "run-form.png") as shot:
        assert shot.width == 1280 and shot.height > 2500  # the whole form in one picture


def test_the_run_form_speaks_the_language_of_whoever_serves(run_form: str, tmp_path: Path) -> None:
    """`make serve` started in French: the deployments' descriptions, the form's labels and
    explanations in French; the values it sends stay the flow's."""
    from visuels._internal.i18n import words
    from visuels.flows.serve import present_deployments, serving_environment

    browser_path = find_chromium()
    assert browser_path is not None
    api_url = run_form.split("/deployments/")[0] + "/api"
    environment = serving_environment(api_url)
    present_deployments(environment, words("fr"))
    try:
        with Browser(browser_path, 1280, 3000) as browser:
            browser.goto(run_form)
            browser.wait_for("document.body.innerText.includes('Envoyer en relecture')")
            text = browser.evaluate("document.body.innerText")
            dropdowns = browser.evaluate(
                "[...document.querySelectorAll('select')].map(s => [...s.options].map(o => o.value))"
            )
            browser.screenshot(tmp_path / "run-form-fr.png")
        for label in ("Campagne", "Quelles images", "Au plus ce nombre de communes", "Réglages techniques"):
            assert label in text
        assert "Comme le dit la campagne : campaigns/ete-2027.yaml attend l’approbation" in text
        assert "Send for review" not in text and "Which pictures" not in text
        assert any(options == ["as the campaign says", "yes", "no"] for options in dropdowns)
        with urllib.request.urlopen(f"{api_url}/deployments/{deployment_id(api_url, RENDER_DEPLOYMENT)}") as answer:
            assert json.load(answer)["description"].startswith("Faire le rendu des visuels d’une campagne")
    finally:
        present_deployments(environment, words("en"))


def test_a_finished_runs_artifacts_show_a_bar_a_plain_table_and_working_links(
    run_form: str, make_campaign: Callable[..., Path], tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    browser_path = find_chromium()
    assert browser_path is not None
    base = run_form.split("/deployments/")[0]
    campaign = make_campaign(communes={"file": "charter/communes.csv", "names": ["Sète"]}, steps=2)
    with temporary_settings({PREFECT_API_URL: f"{base}/api"}):
        summary = render_campaign(campaign=str(campaign), review="yes", run={"output_dir": str(tmp_path / "out")})
    assert summary.rendered == 2
    artifacts = {artifact["key"] or artifact["description"]: artifact for artifact in _read(f"{base}/api", "artifacts")}
    with Browser(browser_path, 1280, 1100) as browser:

        def show(name: str, ready: str) -> str:
            browser.goto(f"{base}/artifacts/artifact/{artifacts[name]['id']}")
            browser.wait_for(ready, timeout=60)
            browser.screenshot(tmp_path / f"{name[:40]}.png")
            return browser.evaluate("document.body.innerText")

        every_image_drawn = "[...document.images].every(i => i.complete && i.naturalWidth > 0)"
        # In the campaign's language (French here), as its report and the table's headers.
        progress = show(
            "Test campagne : avancement",
            f"document.body.innerText.includes('2 sur 2 images') && {every_image_drawn}"
            " && [...document.images].some(i => i.src.startsWith('data:image/svg'))",
        )
        assert "Progress:" not in progress and "terminé" in progress
        table = show("compliance-test-campagne", "document.querySelectorAll('th').length > 4")
        headers = browser.evaluate("[...document.querySelectorAll('th')].map(h => h.innerText.trim())")
        assert headers[:5] == ["Verdict", "Raisons", "Commune", "Format", "Public"] and "Sète" in table
        assert not [header for header in headers if "_" in header]
        show("report-test-campagne", "document.querySelectorAll('a[href^=\"http\"]').length > 0")
        links = browser.evaluate("[...document.querySelectorAll('a')].map(a => a.href)")
        assert any(link.startswith("http://") and link.endswith("/report.html") for link in links)  # not file://
        sheet = show("contact-sheet-test-campagne", f"document.images.length >= 2 && {every_image_drawn}")
        assert "instagram_square" in sheet and "story" in sheet and "residents" in sheet and "✔" in sheet
        assert "Les codes en gras désignent les fichiers" in sheet
