"""The compliance report and the contact sheet, as a communication officer reads them."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from visuels.engine.renderer import Renderer
from visuels.flows.artifacts.contact_sheet import contact_sheet_markdown
from visuels.planning.plan import plan_render
from visuels.review.decisions import review_listing
from visuels.review.publish import finish_render

from tests.helpers import SAMPLE_CHARTER_DIR, render_now, rendered_campaign_file


def _render(make_campaign: Callable[..., Path], tmp_path: Path, renderer: Renderer, **fields: object) -> tuple:
    out = tmp_path / "outputs"
    plan = plan_render(make_campaign(steps=2, **fields), out)
    exported = render_now(renderer, plan, out)
    return out, plan, exported, finish_render(plan, out)


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_the_report_reads_at_a_glance_in_the_campaigns_language(
    make_campaign: Callable[..., Path], tmp_path: Path, renderer: Renderer
) -> None:
    _, plan, exported, reports = _render(make_campaign, tmp_path, renderer)
    page = reports.html.read_text(encoding="utf-8")
    assert '<html lang="fr">' in page
    verdict = page.index('class="verdict"')
    assert verdict < page.index("Règles vérifiées") < page.index("<h2>")  # the verdict first, then the rules
    assert "Toutes les images sont conformes à la charte" in page or "à revoir" in page
    # One story: the headline counts what is to look at first in the cards' own words, and that
    # list is a grid of thumbnails, each with its reasons.
    outliers = page.count("Hors ton de la campagne : écart")
    if outliers:
        flagged = re.search(r"⚑ (\d+) à regarder en premier : ([^<]+)</span>", page)
        assert flagged is not None and f"{outliers // 2} hors ton de la campagne" in flagged.group(2)
        assert page.count('<div class="first">') == 1 and 'class="first"' in page
    assert "au moins 50 %" in page and "au moins 3:1" in page and "4,5:1" in page  # thresholds spelt out
    for raw in ("palette_before", "logo_contrast", "label_px"):
        assert raw not in page  # no field names
    headings = re.findall(r"<h2>([^<]+) <small>", page)
    assert headings == ["Castelnau-d&#39;Estrétefonds", "Sète"]  # grouped by commune
    for item in exported:  # every picture one click from its full-size file, relative to the report
        relative = item.job.relative_path.removeprefix(f"{plan.campaign_slug}/")
        assert f'href="{relative}"' in page
        assert (reports.html.parent / relative).is_file()


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_earlier_versions_after_a_change_to_the_campaign_are_told_apart(
    make_campaign: Callable[..., Path], tmp_path: Path, renderer: Renderer
) -> None:
    """A headline corrected and rendered again: the folder and manifest.json held both versions of
    every picture with nothing to tell which the campaign has now."""
    out, first, _, _ = _render(make_campaign, tmp_path, renderer, formats=["instagram_square"], headline="Bonjour")
    _, second, _, reports = _render(make_campaign, tmp_path, renderer, formats=["instagram_square"], headline="Bonsoir")
    files = json.loads((out / second.campaign_slug / "manifest.json").read_text(encoding="utf-8"))["files"]
    assert {key for key, entry in files.items() if entry["current"]} == set(second.campaign_keys)
    assert {key for key, entry in files.items() if not entry["current"]} == set(first.campaign_keys)
    page = reports.html.read_text(encoding="utf-8")
    assert f"depuis un changement de ses textes, communes ou réglages : {len(first.campaign_keys)}," in page
    assert len(reports.rows) == len(second.campaign_keys)  # the report covers the campaign as it is


def test_an_english_campaign_gets_an_english_report(
    make_campaign: Callable[..., Path], tmp_path: Path, renderer: Renderer
) -> None:
    _, _, _, reports = _render(make_campaign, tmp_path, renderer, language="en", formats=["instagram_square"])
    page = reports.html.read_text(encoding="utf-8")
    assert '<html lang="en">' in page and "Rules checked on every picture" in page and "at least 3:1" in page
    assert reports.table[0]["Verdict"] in ("✔ Complies", "✖ To review")


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_the_contact_sheet_is_a_grid_with_captions(
    make_campaign: Callable[..., Path], tmp_path: Path, renderer: Renderer
) -> None:
    out, plan, exported, _ = _render(make_campaign, tmp_path, renderer)
    listing = review_listing(out, plan.campaign_slug, [item.job.key for item in exported])
    sheet = contact_sheet_markdown("Review", out, listing)
    rows = [line for line in sheet.splitlines() if line.startswith("|")]
    assert rows[1] == "|---|---|---|---|"
    pictures, captions = rows[2], rows[3]
    assert pictures.count("![") == 4
    assert "Sète · story · residents" in captions and captions.count("**") == 8


def test_the_baseline_of_one_picture_is_said_in_the_singular() -> None:
    """A first report of one picture (a trial on one commune, one format) fixes the baseline from it."""
    from visuels.postprocess.coherence import StyleBaseline, StyleSignature
    from visuels.review.report import WORDINGS

    signature = StyleSignature(lab_mean=[50.0, 0.0, 0.0], lab_spread=[10.0, 5.0, 5.0], palette=[1.0])
    said = {
        (lang, count, by): WORDINGS[lang].baseline(
            StyleBaseline(signature=signature, pictures=count, fixed_at="2026-12-06T10:00:00+00:00", fixed_by=by)
        )
        for lang in ("en", "fr")
        for count in (1, 2)
        for by in ("first report", "designer")
    }
    assert said[("en", 1, "first report")] == "the one picture of its first report, fixed on 2026-12-06"
    assert said[("fr", 1, "first report")] == "l’image de son premier rapport, fixée le 06/12/2026"
    assert said[("en", 1, "designer")] == "a picture the designer chose, fixed on 2026-12-06"
    assert said[("fr", 1, "designer")] == "une image choisie par la graphiste, fixée le 06/12/2026"
    assert said[("en", 2, "first report")] == "the median of the 2 pictures of its first report, fixed on 2026-12-06"
    assert said[("fr", 2, "designer")] == "la médiane de 2 images choisies par la graphiste, fixée le 06/12/2026"


def test_one_more_to_look_at_is_said_in_the_singular() -> None:
    from visuels.review.report import WORDINGS

    assert WORDINGS["fr"].more(1) == "et 1 autre (marquée ⚑ ci-dessous)"
    assert WORDINGS["fr"].more(3) == "et 3 autres (marquées ⚑ ci-dessous)"
    assert WORDINGS["en"].more(1) == "and 1 more (marked ⚑ below)"
    # A region's counts with their thousands parted: "106704 pictures, 4446 communes" before.
    assert WORDINGS["en"].counts(106_704, 4_446) == "106,704 pictures, 4,446 communes"
    assert WORDINGS["fr"].counts(106_704, 4_446) == "106\u202f704 images, 4\u202f446 communes"


def test_a_contact_sheet_one_past_its_thumbnails_says_one_more(tmp_path: Path) -> None:
    from visuels._internal.i18n import words
    from visuels.flows.artifacts.contact_sheet import MAX_THUMBNAILS

    listing = {
        f"picture-{number}.png": {"key": f"{number:064x}", "thumbnail": f"thumbnails/{number}.jpg"}
        for number in range(MAX_THUMBNAILS + 1)
    }
    assert "… and 1 more (see the campaign report):" in contact_sheet_markdown("Review", tmp_path, listing)
    french = contact_sheet_markdown("Relecture", tmp_path, listing, words("fr"))
    assert "… et 1 autre (voir le rapport de la campagne) :" in french


def test_a_region_wide_contact_sheet_lists_the_first_names_and_counts_the_others(tmp_path: Path) -> None:
    """A region's 106,704 names made an artifact of 8 MB that Prefect's UI draws as one list."""
    from visuels._internal.i18n import words
    from visuels.flows.artifacts.contact_sheet import MAX_LISTED, MAX_THUMBNAILS

    listing = {
        f"picture-{number}.png": {"key": f"{number:064x}", "thumbnail": f"thumbnails/{number}.jpg"}
        for number in range(MAX_THUMBNAILS + MAX_LISTED + 2)
    }
    sheet = contact_sheet_markdown("Review", tmp_path, listing)
    assert f"… and {MAX_LISTED + 2:,} more (see the campaign report):" in sheet  # counts parted: "1,002"
    assert sheet.count("\n- **") == MAX_LISTED and f"`picture-{MAX_THUMBNAILS + MAX_LISTED - 1}.png`" in sheet
    assert sheet.endswith("… 2 others: in the report.\n")
    french = contact_sheet_markdown("Relecture", tmp_path, dict(list(listing.items())[:-1]), words("fr"))
    assert french.endswith("… 1 autre : dans le rapport.\n")


def test_report_pages_hold_whole_communes_in_order_at_most_a_page_of_pictures() -> None:
    from visuels.review.report import _pages

    def commune(pictures: int) -> dict[str, list[dict]]:
        return {"residents · fr": [{}] * pictures}

    communes = {"Agde": commune(3), "Albi": commune(2), "Alès": commune(6), "Arles": commune(1), "Auch": commune(4)}
    pages = _pages(communes, most=5)
    assert [(page.name, page.communes) for page in pages] == [
        ("report.html", ["Agde", "Albi"]),
        ("report-2.html", ["Alès"]),  # more than a page: a page of its own, never cut
        ("report-3.html", ["Arles", "Auch"]),
    ]
    assert [page.name for page in _pages(communes, most=2000)] == ["report.html"]


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_a_large_campaigns_report_is_pages_a_browser_opens(
    make_campaign: Callable[..., Path], tmp_path: Path, renderer: Renderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A region-wide campaign (106,704 pictures over 4,446 communes) made one report.html of about
    120 MB: no browser opens it. Past PAGE_PICTURES, report.html says the whole campaign's verdict
    and what to review first, and links pages of whole communes; a smaller report later leaves no
    page of the larger one behind."""
    import visuels.review.report as report

    monkeypatch.setattr(report, "PAGE_PICTURES", 2)
    out, plan, exported, reports = _render(make_campaign, tmp_path, renderer)
    folder = reports.html.parent
    pages = {path.name: path.read_text(encoding="utf-8") for path in sorted(folder.glob("report*.html"))}
    assert list(pages) == ["report-2.html", "report.html"]
    headings = {name: re.findall(r"<h2>([^<]+) <small>", page) for name, page in pages.items()}
    assert headings == {"report.html": ["Castelnau-d&#39;Estrétefonds"], "report-2.html": ["Sète"]}
    for page in pages.values():
        assert "4 images, 2 communes" in page  # the whole campaign's verdict on every page
        assert 'href="report-2.html">Sète</a>' in page or "<b>Sète</b>" in page
    anchors = [anchor for page in pages.values() for anchor in re.findall(r'class="card[^"]*" id="([^"]+)"', page)]
    assert sorted(anchors) == sorted(Path(item.job.relative_path).stem for item in exported)  # each once
    first = re.search(r'<div class="first">(.*?)</div>', pages["report.html"], re.S)
    for target, anchor in re.findall(r'href="([^"#]*)#([^"]+)"', first.group(1) if first else ""):
        assert f'id="{anchor}"' in pages[target or "report.html"]  # what to review first, wherever its card
    monkeypatch.setattr(report, "PAGE_PICTURES", 2000)
    finish_render(plan, out)
    assert [path.name for path in folder.glob("report*.html")] == ["report.html"]


def test_communes_of_one_name_are_named_with_their_code_where_they_meet() -> None:
    from visuels.review.report import commune_labels

    labels = commune_labels(
        [("09002", "Aigues-Vives"), ("34301", "Sète"), ("11001", "Aigues-Vives"), ("34301", "Sète")]
    )
    assert labels == {"09002": "Aigues-Vives (09002)", "11001": "Aigues-Vives (11001)", "34301": "Sète"}


def test_the_report_and_the_studio_tell_apart_communes_that_share_a_name(
    make_campaign: Callable[..., Path], tmp_path: Path, renderer: Renderer
) -> None:
    """Occitanie has four Aigues-Vives (164 names shared by 2 or more communes): the report merged
    their pictures under one heading and counted 4,243 communes for 4,446; the studio's filters
    offered one Aigues-Vives."""
    from fastapi.testclient import TestClient
    from visuels.inputs.charter import load_charter
    from visuels.marking.keys import signing_files
    from visuels.record.database import Database, database_url
    from visuels.studio.app import Studio, create_app

    from tests.helpers import SAMPLE_CHARTER_DIR

    campaign = make_campaign(communes={"names": ["09002", "11001", "Sète"]}, formats=["instagram_square"])
    out, plan, _, reports = _render(lambda **fields: campaign, tmp_path, renderer)
    page = reports.html.read_text(encoding="utf-8")
    headings = re.findall(r"<h2>([^<]+) <small>", page)
    assert headings == ["Aigues-Vives (09002)", "Aigues-Vives (11001)", "Sète"]
    assert "3 pictures, 3 communes" in page or "3 images, 3 communes" in page
    rows = list(csv.DictReader(reports.csv.open(encoding="utf-8")))
    assert sorted((row["commune"], row["insee"]) for row in rows) == [
        ("Aigues-Vives (09002)", "09002"),
        ("Aigues-Vives (11001)", "11001"),
        ("Sète", "34301"),
    ]
    assert sorted(row["Commune"] for row in reports.table)[:2] == ["Aigues-Vives (09002)", "Aigues-Vives (11001)"]
    listing = review_listing(out, plan.campaign_slug, list(plan.campaign_keys))
    assert "Aigues-Vives (11001) · instagram_square" in contact_sheet_markdown("Review", out, listing)
    database = Database(database_url(out))
    studio = Studio(out, database, load_charter(SAMPLE_CHARTER_DIR), signing_files(), device="cpu")
    with TestClient(create_app(studio), base_url="http://127.0.0.1:7860") as client:
        picker = client.get(f"/retouch?campaign={plan.campaign_slug}&commune=Aigues-Vives (11001)").text
    database.close()
    assert (
        '<option value="Aigues-Vives (11001)" selected>' in picker and '<option value="Aigues-Vives (09002)"' in picker
    )
    assert "1 of 3" in picker or "1 sur 3" in picker, re.findall(r".{40}of 3.{10}", picker)


def test_the_table_to_review_first_puts_failing_then_flagged_pictures_first() -> None:
    from visuels.review.report import to_review_first

    kinds = {
        "ok": ("pass", "no", ""),
        "off": ("pass", "yes", ""),
        "fail": ("fail", "no", ""),
        "flag": ("pass", "no", "x"),
    }
    order = ["ok", "off", "ok", "fail", "flag", "fail"]
    rows = [dict(zip(("verdict", "off_style", "flagged"), kinds[kind], strict=True)) for kind in order]
    shown = [f"{order[index]}-{index}" for index in to_review_first(rows)]
    assert shown == ["fail-3", "fail-5", "off-1", "flag-4", "ok-0", "ok-2"]


def test_the_table_holds_the_pictures_to_review_first_only(
    rendered_copy: tuple[Path, str, list[str], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A region's 106,704 pictures made 106,704 table rows, of which Prefect's artifact showed 1,000."""
    import visuels.review.report as report
    from visuels.inputs.charter import load_charter
    from visuels.record.database import Database, database_url

    out, _slug, files, _keys = rendered_copy
    plan = plan_render(rendered_campaign_file(out), out)
    database = Database(database_url(out))
    monkeypatch.setattr(report, "TABLE_ROWS", 2)
    reports = report.write_reports(database, out, plan, load_charter(SAMPLE_CHARTER_DIR))
    database.close()
    assert len(reports.rows) == len(files) > 2 and len(reports.table) == 2
    first = [reports.rows[index]["file"] for index in report.to_review_first(reports.rows)[:2]]
    assert [list(row.values())[-1] for row in reports.table] == [file.split("/", 1)[1] for file in first]  # its file


def test_report_counts_recorded_pictures_no_longer_in_the_folder(
    rendered_copy: tuple[Path, str, list[str], list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """`visuels report` after a picture was removed from the folder listed it as reported and
    compliant, and said nothing: a designer would publish a folder one picture short."""
    from visuels.cli import main

    out, _slug, files, _keys = rendered_copy
    (out / files[0]).unlink()
    for file in files[1:3]:  # two edits a render kept beside their outputs: counted too
        kept = out / file
        kept.with_name(f"{kept.stem}-edited{kept.suffix}").write_bytes(kept.read_bytes())
    assert main(["report", str(rendered_campaign_file(out)), "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (
        "1 reported picture is no longer in the folder as it was recorded (removed or changed since):"
        " `visuels render` makes it again" in printed
    )
    assert "not rendered yet" not in printed  # the small campaign is rendered whole
    assert "2 edits saved over outputs wait to be finalized (kept beside them as NAME-edited.png)" in printed


def test_a_picture_another_run_records_while_this_one_publishes_is_in_what_it_publishes(
    rendered_copy: tuple[Path, str, list[str], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs of a campaign (two machines) ending together: the other records its last picture
    after this one read the record, and publishes before this one's files replace its own. This
    run's manifest.json and report, read before, would leave that picture out until the next run."""
    from visuels.record import manifest
    from visuels.record.database import Database, database_url, outputs_table

    out, slug, files, keys = rendered_copy
    plan = plan_render(rendered_campaign_file(out), out)
    database = Database(database_url(out))
    late = manifest.entries(database, slug, [keys[-1]])[keys[-1]]
    with database.transaction() as connection:  # not recorded yet, by the other run
        connection.execute(outputs_table.delete().where(outputs_table.c.job_key == keys[-1]))
    written = manifest.write_manifest_json

    def written_then_recorded_elsewhere(*arguments: object) -> Path:
        target = written(*arguments)
        if keys[-1] not in json.loads(target.read_text(encoding="utf-8"))["files"]:
            with database.transaction() as connection:
                manifest.add(connection, keys[-1], slug, late)
        return target

    monkeypatch.setattr(manifest, "write_manifest_json", written_then_recorded_elsewhere)
    reports = finish_render(plan, out)
    database.close()
    assert set(json.loads((out / slug / "manifest.json").read_text(encoding="utf-8"))["files"]) == set(keys)
    assert {row["file"] for row in reports.rows} == set(files)
