"""The studio's pages and API, called directly (the browser tests are in tests/e2e/test_studio.py)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw
from visuels.cli import main as cli
from visuels.inputs.charter import load_charter
from visuels.marking.keys import signing_files
from visuels.record.database import Database, database_url
from visuels.record.review_batches import record_review
from visuels.review.decisions import ReviewDecision, pictures_to_review
from visuels.studio.app import Studio, create_app
from visuels.studio.pages import PREVIEW_SIDE
from visuels.studio.reviews import ReviewRun

from tests.helpers import SAMPLE_CHARTER_DIR, ledger_rows, rendered_campaign_file


class RecordedReviews:
    """A review backend that records the decisions it is asked to send (the Prefect one is in test_flow)."""

    def __init__(self, run: ReviewRun) -> None:
        self.review = run
        self.sent: list[ReviewDecision] = []

    def paused_runs(self) -> list[ReviewRun]:
        return [self.review]

    def run(self, run_id: str) -> ReviewRun | None:
        return self.review if run_id == self.review.id else None

    def resume(self, run_id: str, decision: ReviewDecision) -> None:
        self.sent.append(decision)


@pytest.fixture
def studio(
    rendered_copy: tuple[Path, str, list[str], list[str]],
) -> Iterator[tuple[TestClient, Path, list[str], RecordedReviews]]:
    out, slug, files, keys = rendered_copy
    database = Database(database_url(out))
    record_review(database, "render-1", slug, keys)  # as the render run that asked for review froze them
    reviews = RecordedReviews(
        ReviewRun(
            id="run-1",
            name="review-x",
            campaign_slug=slug,
            batch="render-1",
            output_dir=str(out),
            paused=True,
            state="Paused",
        )
    )
    app = create_app(
        Studio(out, database, load_charter(SAMPLE_CHARTER_DIR), signing_files(), device="cpu", reviews=reviews)
    )
    with TestClient(app, base_url="http://127.0.0.1:7860") as client:
        yield client, out, files, reviews
    database.close()


def _png_data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_home_and_review_grid_list_the_pictures(studio: tuple) -> None:
    client, _, files, _ = studio
    home = client.get("/")
    assert home.status_code == 200 and "/review/run-1" in home.text
    assert f"test-campagne: {len(files)} pictures" in home.text  # counted in the record
    grid = client.get("/review/run-1")
    assert grid.status_code == 200
    # The page's script makes the cards of the page shown from the pictures' data (tests/e2e looks).
    data = grid.text.split('<script type="application/json" id="pictures">', 1)[1].split("</script>", 1)[0]
    pictures = json.loads(data)
    assert sorted(picture["file"] for picture in pictures) == sorted(files)
    assert {picture["commune"] for picture in pictures} >= {"Sète"} and "Sète" in grid.text  # a filter's choice
    assert all(picture["format"] and picture["audience"] == "residents" for picture in pictures)
    thumbnail = client.get("/files/" + quote(pictures[0]["thumbnail"]))
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"


def test_a_review_page_is_made_again_only_when_what_it_shows_changes(
    studio: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A region's review page takes 12 s to make from the record: opened again, it was made again."""
    import visuels.studio.reviewing as reviewing
    from visuels.record import ledger

    client, out, _, _ = studio
    made = []
    listing = reviewing.review_listing
    monkeypatch.setattr(reviewing, "review_listing", lambda *args: made.append(args) or listing(*args))
    first = client.get("/review/run-1")
    assert client.get("/review/run-1").text == first.text and len(made) == 1
    assert 'lang="fr"' in client.get("/review/run-1?lang=fr").text and len(made) == 2  # another language
    assert client.get("/review/run-1", params={"per_page": 8}).status_code == 200 and len(made) == 3
    assert client.get("/review/run-1").text == first.text and len(made) == 4  # the last one only is kept
    assert client.get("/review/run-1").text == first.text and len(made) == 4
    database = Database(database_url(out))  # a decision, a retouch recorded meanwhile: made again
    row = ledger.by_job_key(database, pictures_to_review(out, "render-1", [])[0])
    fields = {name: row[name] for name in ledger.LedgerEntry.model_fields} | {
        "approval": "approved",
        "parent_id": row["id"],
    }
    with database.transaction() as connection:
        ledger.append(connection, ledger.LedgerEntry(**fields))
    database.close()
    client.get("/review/run-1")
    assert len(made) == 5
    (out / "test-campagne" / "coherence.json").touch()  # `visuels baseline` fixed the style again
    client.get("/review/run-1")
    assert len(made) == 6


def test_a_review_answer_is_checked_then_sent(studio: tuple) -> None:
    client, out, _, reviews = studio
    keys = pictures_to_review(out, "render-1", [])
    code = keys[0][:12]
    refused = client.post("/api/review/run-1", json={"rejected": [code]})
    assert refused.status_code == 422 and "needs a comment" in refused.json()["error"]
    assert client.post("/api/review/run-1", json={"rejected": ["nope"], "comment": "x"}).status_code == 422
    assert reviews.sent == []
    sent = client.post("/api/review/run-1", json={"rejected": [code], "comments": {code: "blurry"}, "reviewer": "Léa"})
    assert sent.status_code == 200 and sent.json() == {"rejected": 1, "approved": len(keys) - 1}
    assert reviews.sent == [ReviewDecision(rejected=[code], comments={code: "blurry"}, reviewer="Léa")]


def test_nothing_outside_the_output_folder_is_served(studio: tuple) -> None:
    client, out, _, _ = studio
    (out.parent / "secret.txt").write_text("no")
    assert client.get("/files/../secret.txt").status_code == 404
    assert client.get("/files/%2E%2E/secret.txt").status_code == 404
    assert client.get("/retouch", params={"file": "../secret.txt"}).status_code == 404
    # Inside it, only outputs and reports: not the database of record, nor a file being written.
    assert (out / "visuels.sqlite").is_file() and client.get("/files/visuels.sqlite").status_code == 404
    (out / ".a.png.host.1.0123abcd.tmp").write_bytes(b"x")
    assert client.get("/files/.a.png.host.1.0123abcd.tmp").status_code == 404
    # Names no file system could have: not found either, not a server error.
    for impossible in ("%00.png", "a" * 300 + ".png", "/".join(["b" * 200] * 30)):
        assert client.get(f"/files/{impossible}").status_code == 404
        assert client.get("/api/layers", params={"file": impossible.replace("%00", "\0")}).status_code == 404
    (out / "loop.png").symlink_to(out / "loop.png")  # a link that leads back to itself names no file
    assert client.get("/files/loop.png").status_code == 404


def test_a_rebound_name_or_another_site_is_refused(studio: tuple) -> None:
    """DNS rebinding (another name, resolved to 127.0.0.1) and cross-site requests get nothing."""
    client, out, files, reviews = studio
    assert client.get(f"/files/{files[0]}").status_code == 200
    assert client.get(f"/files/{files[0]}", headers={"Host": "localhost:7860"}).status_code == 200
    rebound = client.get(f"/files/{files[0]}", headers={"Host": "evil.example:7860"})
    assert rebound.status_code == 403 and b"\x89PNG" not in rebound.content and "evil.example" in rebound.text
    code = pictures_to_review(out, "render-1", [])[0][:12]
    decision = {"rejected": [code], "comment": "x"}
    for origin in ("http://evil.example", "http://127.0.0.1:9999", "null"):
        refused = client.post("/api/review/run-1", json=decision, headers={"Origin": origin})
        assert refused.status_code == 403, origin
    assert reviews.sent == []  # no review was resumed: nothing published
    assert (
        client.post("/api/review/run-1", json=decision, headers={"Origin": "http://127.0.0.1:7860"}).status_code == 200
    )


def test_retouch_then_keep_writes_one_marked_file(studio: tuple) -> None:
    client, out, files, _ = studio
    original = out / files[0]
    size = Image.open(original).size
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).ellipse((100, 100, 400, 300), fill=(255, 40, 40, 255))
    made = client.post(
        "/api/retouch", json={"file": files[0], "prompt": "a boat", "variants": 2, "mask": _png_data_url(layer)}
    )
    assert made.status_code == 200, made.text
    body = made.json()
    assert len(body["variants"]) == 2
    assert client.get(body["variants"][1]).headers["content-type"] == "image/jpeg"
    assert not list(original.parent.glob("*-retouch-*"))  # previews are never written
    kept = client.post("/api/keep", json={"session": body["session"], "variant": 1})
    assert kept.status_code == 200, kept.text
    result = kept.json()
    assert result["original"] == files[0] and result["check"]["passed"]
    written = out / result["file"]
    assert written.is_file() and written.name == f"{original.stem}-retouch-1{original.suffix}"
    changed = np.abs(
        np.asarray(Image.open(written).convert("RGB"), dtype=np.int16)
        - np.asarray(Image.open(original).convert("RGB"), dtype=np.int16)
    ).max(axis=2)
    assert (changed[:90] > 16).mean() < 0.002  # above the brushed ellipse: unchanged


def test_retouch_refusals_are_one_line(studio: tuple) -> None:
    client, _, files, _ = studio
    wrong = client.post(
        "/api/retouch",
        json={"file": files[0], "prompt": "x", "mask": _png_data_url(Image.new("RGBA", (10, 6), (255, 0, 0, 255)))},
    )
    assert wrong.status_code == 400 and "is 10x6 but the picture is" in wrong.json()["error"]
    # Named as the designer knows them, not by the server's temporary folder (/tmp/tmpk3x…/mask.png).
    assert wrong.json()["error"].startswith("brushed-mask.png: mask: ")
    tiny = client.post(
        "/api/finalize",
        json={"file": files[0], "name": "retouche.png", "data": _png_data_url(Image.new("RGB", (8, 8)))},
    )
    assert tiny.status_code == 400 and tiny.json()["error"].startswith("retouche.png: edited: 8x8 pixels: too small")
    empty = client.post("/api/retouch", json={"file": files[0], "prompt": ""})
    assert empty.status_code == 422 and "prompt" in empty.json()["error"]
    no_mask = client.post("/api/retouch", json={"file": files[0], "prompt": "x", "mode": "inpaint"})
    assert no_mask.status_code == 400 and "needs a mask" in no_mask.json()["error"]
    # Not what its pages send: a picture posted as a form (FastAPI's own answer was a 500 on its bytes).
    form = client.post("/api/finalize", files={"file": ("edit.png", b"\x89PNG\r\n\x1a\n\xff\xfe", "image/png")})
    assert form.status_code == 422 and form.json()["error"].startswith("/api/finalize: body: Input should be")
    missing = client.post("/api/keep", json={}, headers={"Accept-Language": "fr"})
    assert missing.status_code == 422 and ": requis, et absent" in missing.json()["error"]


def test_a_layered_file_is_offered_and_refused_for_the_built_in_layout_in_one_line(studio: tuple) -> None:
    client, out, files, _ = studio
    page = client.get("/retouch", params={"file": files[0]})
    assert "/api/layers?file=" in page.text  # the retouch page links the layered file
    refused = client.get("/api/layers", params={"file": files[0]})
    assert refused.status_code == 400 and "built-in layout" in refused.json()["error"]
    assert (out / files[0]).is_file() and not list(out.rglob("*.psd"))  # nothing written beside the outputs


def test_the_charters_templates_are_shown_filled_with_sample_texts_before_any_render(studio: tuple) -> None:
    client, out, _, _ = studio
    home = client.get("/").text
    assert '<a href="/templates/bande">bande: instagram_square, story, web_banner, poster_a3</a>' in home
    french = client.get("/?lang=fr").text  # French spaces the colon
    assert '<a href="/templates/bande">bande : instagram_square, story, web_banner, poster_a3</a>' in french
    page = client.get("/templates/bande")
    assert page.status_code == 200 and page.text.count("/api/template-preview/bande/") == 4
    preview = client.get("/api/template-preview/bande/story.png")
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
    picture = Image.open(io.BytesIO(preview.content))
    assert picture.height == PREVIEW_SIDE and picture.width == PREVIEW_SIDE * 1080 // 1920
    assert client.get("/api/template-preview/bande/poster_a3_300dpi.png").status_code == 404
    assert not list(out.rglob("*story*.png"))  # shown, never written


def test_a_finalized_edits_charter_notes_are_said_in_the_pages_language(studio: tuple) -> None:
    """The charter's notes on an edited copy (its size changed, its label painted over and drawn
    again) in French on a French page; the record keeps them in English."""
    client, out, files, _ = studio
    edited = Image.open(out / files[1]).convert("RGB")
    width, height = edited.size
    ImageDraw.Draw(edited).rectangle((width // 2, 0, width, height // 4), fill=(250, 250, 250))  # over the label
    buffer = io.BytesIO()
    edited.resize((width - 80, height - 80)).save(buffer, format="PNG")
    data = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    done = client.post(
        "/api/finalize",
        json={"file": files[1], "name": "retouche.png", "data": data},
        headers={"Accept-Language": "fr"},
    )
    assert done.status_code == 200, done.text
    check = done.json()["check"]
    assert check["reasons"] == [
        f"taille changée de {width}x{height} en {width - 80}x{height - 80} (la taille du format)"
    ]
    assert "la mention IA a été redessinée à sa place (la retouche l’avait cachée)" in check["notes"]


def test_a_dropped_edit_is_finalized_beside_its_original(studio: tuple) -> None:
    client, out, files, _ = studio
    original = out / files[0]
    before = client.get(f"/retouch?campaign={files[0].split('/')[0]}").text  # the picker's listing, kept
    assert "Retouched or edited versions:" not in before
    edited = Image.open(original).convert("RGB")
    ImageDraw.Draw(edited).rectangle((300, 200, 500, 400), fill=(20, 60, 120))
    buffer = io.BytesIO()
    edited.save(buffer, format="JPEG", quality=92)
    data = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
    done = client.post("/api/finalize", json={"file": files[0], "name": "retouche lea.jpg", "data": data})
    assert done.status_code == 200, done.text
    result = done.json()
    assert (out / result["file"]).parent == original.parent
    # Named after its original, in the original's file type; again: a second name, nothing overwritten.
    assert result["file"].endswith(f"{original.stem}-final{original.suffix}")
    assert result["original"] == files[0]
    again = client.post(
        "/api/finalize", json={"file": files[0], "name": "retouche lea.jpg", "data": data, "keep": "upload"}
    )
    assert again.status_code == 200, again.text
    assert again.json()["file"].endswith(f"{original.stem}-final.jpg")  # the dropped file's type, asked for
    with Image.open(out / again.json()["file"]) as written:
        assert written.format == "JPEG"
    # Both are listed with their original, in the picker and in the report written again.
    picker = client.get(f"/retouch?campaign={files[0].split('/')[0]}").text
    assert "Retouched or edited versions:" in picker
    assert f"{original.stem}-final{original.suffix}" in picker and f"{original.stem}-final.jpg" in picker
    campaign = rendered_campaign_file(out)
    assert cli(["report", str(campaign), "--output-dir", str(out)]) == 0
    report = (out / files[0].split("/")[0] / "report.html").read_text(encoding="utf-8")
    assert "Versions retouchées ou modifiées" in report and f"{original.stem}-final.jpg" in report
    assert client.post("/api/finalize", json={"file": files[0], "name": "x.png", "data": "%%%"}).status_code == 400


def test_an_edit_a_render_kept_beside_its_output_is_listed_and_finalized_where_it_is(studio: tuple) -> None:
    """A render keeps an edit saved over an output beside it (NAME-edited.png) and makes the output
    again: the studio said nothing of it. The picker's card and the finalize page list it, and the
    finalize page marks it again where it lies, from its output; then it is listed no more."""
    client, out, files, _ = studio
    original = out / files[0]
    edited = Image.open(original).convert("RGB")
    ImageDraw.Draw(edited).rectangle((300, 200, 500, 400), fill=(20, 60, 120))
    kept = original.with_name(f"{original.stem}-edited{original.suffix}")
    edited.save(kept, format="PNG")
    (out / files[0].split("/")[0] / "approved").mkdir()
    edited.save(out / files[0].split("/")[0] / "approved" / kept.name)  # not beside an output: not listed
    kept_name = kept.relative_to(out).as_posix()
    campaign = files[0].split("/")[0]
    assert "the edit is kept:" in client.get(f"/retouch?campaign={campaign}").text
    page = client.get("/finalize").text
    assert page.count(f'data-edit="{kept_name}"') == 1 and f"saved over {original.name}" in page
    assert client.post("/api/finalize-kept", json={"file": files[0]}).status_code == 404  # an output, not a kept edit
    assert client.post("/api/finalize-kept", json={"file": "../" + kept_name}).status_code == 404
    done = client.post("/api/finalize-kept", json={"file": kept_name})
    assert done.status_code == 200, done.text
    assert done.json()["file"] == kept.with_name(f"{kept.stem}-final{kept.suffix}").relative_to(out).as_posix()
    assert done.json()["original"] == files[0]
    assert "data-edit=" not in client.get("/finalize").text
    assert "the edit is kept:" not in client.get(f"/retouch?campaign={campaign}").text


async def _lifespan(receive, send) -> None:  # type: ignore[no-untyped-def]
    """A bare ASGI app's start and stop, as TestClient drives them."""
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


def test_bound_beyond_loopback_it_asks_for_its_token(tmp_path: Path) -> None:
    from visuels._internal.web_guard import LocalOnly

    async def hello(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})

    app = LocalOnly(hello, hosts=["studio.region.fr"], token="s3cret")
    with TestClient(app, base_url="http://studio.region.fr:7860", follow_redirects=False) as client:
        assert client.get("/").status_code == 401
        assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/", headers={"Authorization": "Bearer s3cret"}).text == "hello"
        first = client.get("/retouch?token=s3cret&campaign=x")  # the address printed at start
        assert first.status_code == 303 and first.headers["location"] == "/retouch?campaign=x"
        assert "HttpOnly" in first.headers["set-cookie"] and "SameSite=Strict" in first.headers["set-cookie"]
        assert client.get("/").text == "hello"  # the cookie from now on
        assert client.get("/", headers={"Host": "evil.example"}).status_code == 403


def test_a_body_past_the_studios_limit_is_refused_or_cut_off() -> None:
    """Declared too long: 413 before the app reads it; sent without a length: the app sees its
    client leave where the body passes the limit, having read no further."""
    from visuels._internal.web_guard import LocalOnly
    from visuels.studio.app import MAX_REQUEST_BYTES

    async def count(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        read, message = 0, await receive()
        while message["type"] == "http.request":
            read += len(message.get("body", b""))
            if not message.get("more_body"):
                break
            message = await receive()
        said = f"cut off at {read}" if message["type"] == "http.disconnect" else f"read {read}"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": said.encode()})

    with TestClient(LocalOnly(count, max_body_bytes=1000), base_url="http://127.0.0.1:7860") as client:
        assert client.post("/api/finalize", content=b"x" * 1000).text == "read 1000"
        refused = client.post("/api/finalize", content=b"x" * 1001)
        assert refused.status_code == 413 and "over 0 MB" in refused.text
        chunks = client.post("/api/finalize", content=iter([b"x" * 600, b"x" * 600, b"x" * 600]))
        assert chunks.text.startswith("cut off at ") and int(chunks.text.rsplit(" ", 1)[1]) <= 1000
    assert MAX_REQUEST_BYTES >= 4 * 360 * 2**20 // 3  # a 120-megapixel print TIFF, base64


def test_without_a_prefect_server_the_studio_says_so_in_its_pages(
    rendered_copy: tuple[Path, str, list[str], list[str]],
) -> None:
    out = rendered_copy[0]
    database = Database(database_url(out))
    app = create_app(Studio(out, database, load_charter(SAMPLE_CHARTER_DIR), signing_files(), device="cpu"))
    try:
        with TestClient(app, base_url="http://127.0.0.1:7860") as client:
            home = client.get("/")
            assert home.status_code == 200 and "No Prefect server here" in home.text and "make serve" in home.text
            review = client.get("/review/0b1c2d3e-0000-0000-0000-000000000000")  # a run's artifact link
            assert review.status_code == 503 and review.headers["content-type"].startswith("text/html")
            assert "No Prefect server here" in review.text and '"detail"' not in review.text
    finally:
        database.close()


def test_the_studio_finds_the_server_make_serve_runs_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    import visuels.flows.cli as console_script

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    asked = []
    monkeypatch.setattr(console_script, "_answers", lambda url: asked.append(url) or True)
    handed = {}
    monkeypatch.setattr(console_script, "cli_main", lambda **flows: handed.update(flows) or 0)
    monkeypatch.setattr("sys.argv", ["visuels", "studio"])
    assert console_script.main() == 0
    assert asked == ["http://127.0.0.1:4200/api"] and handed["reviews"].api_url == "http://127.0.0.1:4200/api"
    monkeypatch.setattr(console_script, "_answers", lambda url: False)
    console_script.main()
    assert handed["reviews"] is None  # nobody answers: the studio retouches only, and says so


def test_pages_speak_the_browsers_language_or_the_one_picked(studio: tuple) -> None:
    client = studio[0]
    french = client.get("/retouch", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}).text
    assert '<html lang="fr">' in french and "Retoucher : choisissez une image" in french
    assert "Finaliser une retouche" in french and "Pick an output" not in french
    english = client.get("/retouch?lang=en", headers={"Accept-Language": "fr"}).text
    assert '<html lang="en">' in english and "Retouch: pick an output" in english
    client.cookies.set("visuels_lang", "fr")  # what the page sets when French is picked
    assert "Relectures en attente" in client.get("/").text
    client.cookies.clear()


def test_the_picker_filters_and_pages_with_readable_captions(studio: tuple) -> None:
    from visuels.studio.retouching import PAGE_SIZE, picker_page

    outputs = [
        {"commune": commune, "format": "story", "audience": "families", "language": language, "passed": number % 3 > 0}
        for number, (commune, language) in enumerate(
            (commune, language) for commune in ("Sète", "Foix", "Albi") for language in ("fr", "oc") for _ in range(6)
        )
    ]
    wanted = {"commune": "", "format": "", "audience": "", "language": ""}
    first = picker_page(outputs, wanted, "", 1)
    assert first["pages"] == 2 and len(first["outputs"]) == PAGE_SIZE and first["total"] == 36
    assert picker_page(outputs, wanted, "", 9)["page"] == 2  # past the end: the last page
    assert first["choices"]["commune"] == ["Albi", "Foix", "Sète"] and first["choices"]["language"] == ["fr", "oc"]
    sete_oc = picker_page(outputs, wanted | {"commune": "Sète", "language": "oc"}, "", 1)
    assert sete_oc["matching"] == 6 and {(o["commune"], o["language"]) for o in sete_oc["outputs"]} == {("Sète", "oc")}
    to_review = picker_page(outputs, wanted, "review", 1)
    assert to_review["matching"] == 12 and not any(output["passed"] for output in to_review["outputs"])
    unknown = picker_page(outputs, wanted | {"commune": "Sète", "language": "de"}, "later", 1)  # as the menus show
    assert unknown["matching"] == 12 and unknown["wanted"] == wanted | {"commune": "Sète", "status": ""}

    page = studio[0].get("/retouch?status=ok&language=fr").text
    assert "of" in page and "outputs" in page and '<option value="fr" selected>' in page


def test_the_pickers_filters_and_pages_read_the_record_once_until_it_grows(
    studio: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A region's campaign holds 100,000 outputs: read on each click, each took 3 s and 580 MB."""
    from visuels.studio.app import Studio

    client, out, files, _ = studio
    read = []
    listing = Studio._read_outputs
    monkeypatch.setattr(
        Studio, "_read_outputs", lambda self, campaign: read.append(campaign) or listing(self, campaign)
    )
    campaign = files[0].split("/")[0]
    for query in ("", "&status=ok", "&language=fr", "&page=2"):
        assert client.get(f"/retouch?campaign={campaign}{query}").status_code == 200
    assert read == [campaign]
    picture = client.post(
        "/api/finalize", json={"file": files[0], "name": "x.png", "data": _png_data_url(Image.open(out / files[0]))}
    )
    assert picture.status_code == 200, picture.text  # a row added to the ledger: listed again
    assert Path(picture.json()["file"]).name in client.get(f"/retouch?campaign={campaign}").text
    assert read == [campaign, campaign]


def test_a_dropped_file_of_any_name_is_finalized_once_whatever_the_retries(studio: tuple) -> None:
    """A dropped file named ".." ended in a server error (its bytes written to a folder), as a
    name with a NUL or over 255 bytes would; and the same drop sent again (a retry after a lost
    answer) made a second published file and record of the same edit."""
    client, out, files, _ = studio
    original = out / files[1]
    edited = Image.open(original).convert("RGB")
    ImageDraw.Draw(edited).ellipse((200, 200, 420, 380), fill=(200, 60, 40))
    buffer = io.BytesIO()
    edited.save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    rows = len(ledger_rows(out))
    made = set()
    for name in ("..", "a\x00b.png", "x" * 300 + ".png", "../../ailleurs.png", "C:\\Users\\lea\\retouche.png", ""):
        for _ in range(2):  # sent twice: the second is the first's file
            answer = client.post("/api/finalize", json={"file": files[1], "name": name, "data": data})
            assert answer.status_code == 200, (name, answer.text)
            made.add(answer.json()["file"])
    # Four names as the record says them: "edited" (for ".." and no name), "edited.png" (for the
    # names no file system takes), "ailleurs.png" and "retouche.png": one file and row each.
    assert len(made) == 4 and all((out / file).parent == original.parent for file in made)
    assert len(ledger_rows(out)) == rows + 4
    assert not list(out.parent.glob("ailleurs*"))
