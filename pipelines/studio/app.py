"""The studio's web app (FastAPI, served on 127.0.0.1 by ``visuels studio``, behind ``LocalOnly``).

Pages: the home page (paused reviews, campaigns), a review grid that resumes the paused Prefect
run, a retouch page (brush a mask, make variants, keep one) and a finalize page (drop a file
edited elsewhere beside its original). Every file it writes goes through
``visuels.review.derivatives.mark_derivative``: marked again and recorded against its original.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import secrets
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from PIL import Image
from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select
from visuels._internal.collector import cycles_collected_after
from visuels._internal.i18n import LANGUAGES, Words, browser_language, user_language, words
from visuels._internal.web_guard import LocalOnly
from visuels.errors import VisuelsError
from visuels.inputs.charter import Charter
from visuels.inputs.images import PICTURE_SUFFIXES, read_mask, read_picture
from visuels.inputs.templates import Template
from visuels.inputs.yamlfiles import first_problem
from visuels.marking.keys import SigningFiles
from visuels.marking.mark import preview_jpeg
from visuels.models.devices import DeviceName
from visuels.planning.jobs import KEY_PREFIX_LENGTH
from visuels.postprocess import findings
from visuels.postprocess.chain import postprocess
from visuels.postprocess.coherence import COHERENCE_FILE
from visuels.record import ledger, model_sources
from visuels.record.database import Database, outputs_table
from visuels.review.decisions import ReviewDecision, count_to_review, pictures_to_review, review_listing
from visuels.review.derivatives import (
    Derivative,
    Original,
    finalize_file,
    finalized_name,
    find_original,
    label_box,
    mark_derivative,
)
from visuels.review.report import commune_code, commune_labels
from visuels.studio.reviews import ReviewBackend, ReviewRun

if TYPE_CHECKING:  # these import torch: only the retouch endpoints load them
    from visuels.models.host import ModelHost
    from visuels.review.retouch import RetouchModel, RetouchSettings

TEMPLATES = Path(__file__).parent / "templates"
# What /files serves: the pictures, their thumbnails and edge maps, the reports. Never the database
# of record, keys, or a temporary file being written.
SERVED_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".html", ".csv", ".json"})
PREVIEW_SIDE = 1024  # variants are shown at most this large; only a kept one is written, marked
MAX_NAME_BYTES = 200  # a dropped file's name kept as it is; longer: "edited" (file systems stop at 255)
KEPT_SESSIONS = 8  # retouch sessions (their variants, in memory) kept at once
PAGE_SIZE = 24  # outputs a picker page shows
# Pictures a review page shows at once (``?per_page=``: 1 to REVIEW_MOST_PER_PAGE); the others are
# a click away, their decisions kept in the page.
REVIEW_PER_PAGE = 48
REVIEW_MOST_PER_PAGE = 500
LANGUAGE_COOKIE = "visuels_lang"  # set by the pages when the designer picks a language (?lang=)


class RetouchAsk(BaseModel):
    file: str
    mask: str | None = None  # a PNG data URL: painted strokes on transparency
    prompt: str
    mode: str = "inpaint"
    variants: int = 3
    strength: float = 0.85
    seed: int = 0
    steps: int | None = None


class KeepAsk(BaseModel):
    session: str
    variant: int


class FinalizeAsk(BaseModel):
    file: str  # the original, relative to the output folder
    name: str  # the dropped file's name
    data: str  # its bytes, base64 (a data URL is accepted)
    keep: Literal["original", "upload"] = "original"  # whose file type the finalized file has


@dataclass
class RetouchSession:
    original: Original  # its record, found once when the variants were made
    variants: list[Image.Image]
    settings: RetouchSettings
    model: RetouchModel


@dataclass
class Studio:
    """Everything the app keeps: where outputs are, the charter and keys, the model host, retouch sessions."""

    output_root: Path
    database: Database
    charter: Charter
    signing: SigningFiles
    device: DeviceName = "auto"
    reviews: ReviewBackend | None = None
    edit_model: RetouchModel | None = None  # retouching by instruction, where the studio was given one
    sessions: OrderedDict[str, RetouchSession] = field(default_factory=OrderedDict)
    _host: ModelHost | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)  # the host, the sessions: endpoints run in threads
    _listed: dict[str, tuple[int, list[dict]]] = field(default_factory=dict)  # outputs(): as of a ledger row
    _review_page: tuple[tuple, bytes] | None = None  # the last review page served, and what it was made of

    def host(self) -> ModelHost:
        """The model host, created on first retouch: the other pages never load torch."""
        from visuels.models.devices import choose_device
        from visuels.models.host import ModelHost

        with self._lock:
            if self._host is None:
                self._host = ModelHost(choose_device(self.device))
            return self._host

    def path_of(self, relative: str) -> Path:
        """An output file under the output folder; nothing outside it, and nothing but outputs and
        reports in it (not the database, not a key, not a temporary file), is ever served or read."""
        path = (self.output_root / relative).resolve()
        root = self.output_root.resolve()
        if (
            not path.is_relative_to(root)
            or not path.is_file()
            or path.suffix.lower() not in SERVED_SUFFIXES
            or any(part.startswith(".") for part in path.relative_to(root).parts)
        ):
            raise HTTPException(404, f"{relative}: no such output")
        return path

    def keep_session(self, session: RetouchSession) -> str:
        """Keep a retouch's variants under a new token, forgetting the oldest beyond KEPT_SESSIONS."""
        token = secrets.token_urlsafe(8)
        with self._lock:
            self.sessions[token] = session
            while len(self.sessions) > KEPT_SESSIONS:
                self.sessions.popitem(last=False)
        return token

    def session(self, token: str) -> RetouchSession | None:
        with self._lock:
            return self.sessions.get(token)

    def campaigns(self) -> dict[str, int]:
        """Each campaign with recorded outputs, and how many."""
        campaign = outputs_table.c.campaign
        with self.database.reading() as connection:
            rows = connection.execute(select(campaign, func.count()).group_by(campaign).order_by(campaign))
            return {name: count for name, count in rows}

    def outputs(self, campaign: str) -> list[dict]:
        """The campaign's outputs as pages show them, each with the files retouched or edited from it
        (``derivatives``: their paths under the output folder, or absolute when written elsewhere).
        The last campaign's are kept until the ledger grows: a region's 100,000 take seconds to
        read, and each of the picker's filters and pages asks for them."""
        newest = ledger.newest_id(self.database)  # before reading: a row added meanwhile reads them again
        with self._lock:
            kept = self._listed.get(campaign)
        if kept is not None and kept[0] == newest:
            return kept[1]
        listed = self._read_outputs(campaign)
        with self._lock:
            self._listed = {campaign: (newest, listed)}
        return listed

    def review_page_state(self, run: ReviewRun, *shown: object) -> tuple | None:
        """What a review page of ``run`` is made of, to serve it again while none of it changes (a
        region's takes 12 s to make): the run, how it is shown, the ledger's newest row, the
        campaign's coherence. None for a run of another output folder: made each time."""
        if Path(run.output_dir) != self.output_root:
            return None
        coherence = self.output_root / run.campaign_slug / COHERENCE_FILE
        changed = coherence.stat().st_mtime_ns if coherence.is_file() else 0
        return (run.model_dump_json(), *shown, ledger.newest_id(self.database), changed)

    def kept_review_page(self, state: tuple | None) -> bytes | None:
        with self._lock:
            kept = self._review_page
        return kept[1] if state is not None and kept is not None and kept[0] == state else None

    def keep_review_page(self, state: tuple | None, page: bytes) -> None:
        if state is not None:
            with self._lock:
                self._review_page = (state, page)

    def _read_outputs(self, campaign: str) -> list[dict]:
        with self.database.reading() as connection:
            query = select(outputs_table).where(outputs_table.c.campaign == campaign).order_by(outputs_table.c.file)
            rows = [dict(row._mapping) for row in connection.execute(query)]
        made = ledger.derivatives(self.database, [row["job_key"] for row in rows])
        return _with_commune_labels(
            [
                _describe(row) | {"derivatives": [_derived(done) for done in made.get(row["job_key"], [])]}
                for row in rows
            ]
        )


def _derived(row: dict) -> dict:
    """A retouched or edited file: served (``/files/``) when it lies in the output folder."""
    return {"name": Path(row["file"]).name, "file": row["file"], "served": not Path(row["file"]).is_absolute()}


def _with_commune_labels(described: list[dict]) -> list[dict]:
    """Communes of one name told apart by their code, as the report and the folders do."""
    labels = commune_labels((picture["insee"], picture["commune"]) for picture in described)
    for picture in described:
        picture["commune"] = labels[picture["insee"]]
    return described


def _describe(row: dict) -> dict:
    """An outputs row as pages show it."""
    inputs = json.loads(row["inputs"]) if isinstance(row.get("inputs"), str) else row.get("inputs") or {}
    compliance = json.loads(row["compliance"]) if isinstance(row.get("compliance"), str) else row.get("compliance")
    compliance = compliance or {}
    return {
        "file": row["file"],
        "thumbnail": row["thumbnail"],
        "id": (row.get("job_key") or row.get("key") or "")[:KEY_PREFIX_LENGTH],
        "commune": inputs.get("commune_name", ""),
        "insee": commune_code(inputs),
        "format": inputs.get("format", ""),
        "audience": inputs.get("audience", ""),
        "language": inputs.get("language", ""),
        "passed": compliance.get("passed", True),
        "reasons": compliance.get("reasons", []),
    }


def _pictures(run: ReviewRun) -> list[str]:
    """The job keys a review run asks about."""
    return pictures_to_review(Path(run.output_dir), run.batch, run.keys)


@cycles_collected_after()  # a region's review: 106,704 pictures
def _review_pictures(run: ReviewRun, t: Words) -> list[dict]:
    """The pictures a review run asks about, as its page's script shows them: those to look at first first."""
    listing = review_listing(Path(run.output_dir), run.campaign_slug, _pictures(run))
    described = _with_commune_labels([_describe({**entry, "job_key": entry["key"]}) for entry in listing.values()])
    return [
        picture
        | {
            "name": name,
            "attention": [reason.said(t) for reason in entry["attention"]],
            "reasons": "; ".join(findings.said(reason, t) for reason in picture["reasons"]),
        }
        for (name, entry), picture in zip(listing.items(), described, strict=True)
    ]


def _review_sizes(runs: list[ReviewRun]) -> list[int]:
    """How many pictures each run asks about: one count a database, none read whole."""
    by_folder: dict[str, dict[str, int]] = {}
    for folder in {run.output_dir for run in runs if not run.keys}:
        try:
            by_folder[folder] = count_to_review(Path(folder), [run.batch for run in runs if run.output_dir == folder])
        except VisuelsError:  # its database unreadable: the home still lists the run, its page says why
            by_folder[folder] = {}
    return [len(run.keys) if run.keys else by_folder[run.output_dir].get(run.batch, 0) for run in runs]


def page_language(request: Request) -> str:
    """The page's language: the one picked (``?lang=``, then its cookie), else the browser's, else the user's."""
    picked = request.query_params.get("lang") or request.cookies.get(LANGUAGE_COOKIE)
    if picked in LANGUAGES:
        return picked
    return browser_language(request.headers.get("accept-language")) or user_language()


def page_words(request: Request) -> dict:
    """What every page's template reads its words from: ``_("...")``, and ``lang``."""
    lang = page_language(request)
    return {"_": words(lang), "lang": lang}


def picker_page(outputs: list[dict], wanted: dict[str, str], status: str, page: int) -> dict:
    """The outputs a picker shows: those matching the chosen commune, format, audience, language
    and status, PAGE_SIZE a page; and the values each filter offers. A value no output has (an
    address written by hand, a campaign since rendered again) filters nothing, as its menu shows."""
    choices = {name: sorted({output[name] for output in outputs if output[name]}) for name in wanted}
    wanted = {name: value if value in choices[name] else "" for name, value in wanted.items()}
    status = status if status in ("ok", "review") else ""
    shown = [
        output
        for output in outputs
        if all(not value or output[name] == value for name, value in wanted.items())
        and (not status or output["passed"] == (status == "ok"))
    ]
    pages = max(1, -(-len(shown) // PAGE_SIZE))
    page = min(max(page, 1), pages)
    return {
        "outputs": shown[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
        "choices": choices,
        "wanted": wanted | {"status": status},
        "page": page,
        "pages": pages,
        "matching": len(shown),
        "total": len(outputs),
    }


SAMPLE_TEXTS = {
    "commune": "Saint-Guilhem-le-Désert",
    "headline": "Vivre en Solane, l'été",
    "call_to_action": "L'agenda de l'été : solane.example",
}


def template_sample(charter: Charter, template: Template) -> bytes:
    """A template filled with sample texts over the charter's first reference picture, as a PNG
    (a preview: never marked, never written)."""
    references = sorted(path for path in charter.references.iterdir() if path.suffix.lower() in PICTURE_SUFFIXES)
    picture = read_picture(references[0]) if references else Image.new("RGB", (512, 512), (128, 128, 128))
    result = postprocess(picture, charter, template.width, template.height, "fr", *SAMPLE_TEXTS.values(), template)
    preview = result.image
    preview.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    preview.save(buffer, format="PNG")
    return buffer.getvalue()


def _dropped_name(name: str) -> str:
    """The dropped file's name as a plain file name (its record says it, its suffix may choose the
    finalized file's type): the last part of a path written with either slash; a name that is not
    one (``..``, a NUL, over 200 bytes) is ``edited`` with its suffix when that is a plain one."""
    plain = name.replace("\\", "/").rsplit("/", 1)[-1]
    if plain.strip(".") and "\x00" not in plain and len(plain.encode("utf-8", "replace")) <= MAX_NAME_BYTES:
        return plain
    suffix = Path(plain).suffix
    return "edited" + (suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", suffix) else "")


def _decode_upload(data: str) -> bytes:
    try:
        return base64.b64decode(data.split(",", 1)[1] if data.startswith("data:") else data, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, "the upload is not base64 data") from None


def _derivative_json(done: Derivative, output_root: Path, t: Words) -> dict:
    """A retouched or finalized file for the page's script, its charter check in the page's language."""
    path = Path(done.file).resolve()
    shown = (
        path.relative_to(output_root.resolve()).as_posix() if path.is_relative_to(output_root.resolve()) else done.file
    )
    return {
        "file": shown,
        "ledger_id": done.ledger_id,
        "original": done.original.file,
        "already_done": done.already_done,
        "check": done.check.model_dump()
        | {name: [findings.said(text, t) for text in getattr(done.check, name)] for name in ("reasons", "notes")},
    }


def create_app(studio: Studio, hosts: Sequence[str] = (), token: str | None = None) -> LocalOnly:
    """The studio, behind the checks every served page has (``visuels._internal.web_guard``): the Host
    names it answers to (``hosts`` besides loopback's), the Origin of state-changing requests,
    and ``token`` when it is bound beyond loopback."""
    app = FastAPI(title="visuels studio", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(TEMPLATES), context_processors=[page_words])
    templates.env.filters["finding"] = findings.said  # a recorded reason in the page's words

    @app.exception_handler(VisuelsError)
    async def _bad_input(request: Request, exc: VisuelsError) -> JSONResponse:
        return JSONResponse({"error": exc.said(words(page_language(request)))}, status_code=400)

    def _home(reviews: list[ReviewRun], review_error: str) -> dict:
        return {
            "reviews": [(run, count) for run, count in zip(reviews, _review_sizes(reviews), strict=True)],
            "review_error": review_error,
            "no_server": studio.reviews is None,
            "campaigns": studio.campaigns(),
            "template_sets": {name: list(files) for name, files in studio.charter.templates.items()},
        }

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request) -> HTMLResponse:
        reviews, review_error = [], ""
        if studio.reviews is not None:
            try:
                reviews = studio.reviews.paused_runs()
            except Exception as exc:  # no server reachable: retouching still works
                review_error = words(page_language(request))(
                    "Prefect server not reachable ({error})", error=type(exc).__name__
                )
        context = _home(reviews, review_error)
        return templates.TemplateResponse(request, "home.html", context)

    @app.get("/files/{relative:path}")
    def files(relative: str) -> FileResponse:
        return FileResponse(studio.path_of(relative))

    @app.get("/review/{run_id}", response_class=HTMLResponse)
    def review_page(request: Request, run_id: str, per_page: int = REVIEW_PER_PAGE) -> HTMLResponse:
        if studio.reviews is None:  # a page that says so, not an error in JSON
            return templates.TemplateResponse(request, "home.html", _home([], ""), status_code=503)
        run = studio.reviews.run(run_id)
        if run is None:
            raise HTTPException(404, f"no review run {run_id}")
        per_page = min(max(per_page, 1), REVIEW_MOST_PER_PAGE)
        state = studio.review_page_state(run, page_language(request), per_page)
        if (kept := studio.kept_review_page(state)) is not None:
            return HTMLResponse(kept)
        context = {
            "run": run,
            "pictures": _review_pictures(run, words(page_language(request))),
            "root_matches": Path(run.output_dir) == studio.output_root,
            "per_page": per_page,
        }
        page = templates.TemplateResponse(request, "review.html", context)
        studio.keep_review_page(state, bytes(page.body))
        return page

    @app.post("/api/review/{run_id}")
    def review_answer(request: Request, run_id: str, answer: dict) -> JSONResponse:
        t = words(page_language(request))
        if studio.reviews is None:
            raise HTTPException(404, "reviews need a Prefect server")
        run = studio.reviews.run(run_id)
        if run is None or not run.paused:
            raise HTTPException(409, t("this review is not waiting for a decision any more"))
        try:
            decision = ReviewDecision(**answer)
        except ValidationError as exc:
            return JSONResponse({"error": first_problem(exc)[1].said(t)}, status_code=422)
        keys = _pictures(run)
        known = {key[:KEY_PREFIX_LENGTH] for key in keys}
        unknown = [code for code in decision.rejected if code not in known]
        if unknown:
            return JSONResponse({"error": t("{code} is not one of this run's files", code=unknown[0])}, status_code=422)
        studio.reviews.resume(run_id, decision)
        return JSONResponse({"rejected": len(decision.rejected), "approved": len(keys) - len(decision.rejected)})

    @app.get("/retouch", response_class=HTMLResponse)
    def retouch_page(  # the picker's filters are the page's query parameters
        request: Request,
        campaign: str = "",
        file: str = "",
        commune: str = "",
        format: str = "",  # the query parameter's name, as the outputs say it
        audience: str = "",
        language: str = "",
        status: Literal["", "ok", "review"] = "",
        page: int = 1,
    ) -> HTMLResponse:
        if file:
            original = find_original(studio.database, studio.path_of(file), studio.output_root)
            with Image.open(original.path) as opened:
                size = opened.size
            box = label_box(studio.charter, original, size)
            # As shares of the picture: the page draws the locked zone over the picture at any size.
            locked = {
                "left": box.left / size[0],
                "top": box.top / size[1],
                "width": box.width / size[0],
                "height": box.height / size[1],
            }
            edit_model = studio.edit_model.description if studio.edit_model else None
            return templates.TemplateResponse(
                request, "retouch.html", {"file": file, "locked": locked, "edit_model": edit_model}
            )
        chosen = campaign or next(iter(studio.campaigns()), "")
        wanted = {"commune": commune, "format": format, "audience": audience, "language": language}
        context = {"campaign": chosen, "campaigns": studio.campaigns()} | picker_page(
            studio.outputs(chosen), wanted, status, page
        )
        context["query"] = urlencode({"campaign": chosen, **wanted, "status": status})
        return templates.TemplateResponse(request, "pick.html", context)

    @app.post("/api/retouch")
    def make_variants(request: Request, ask: RetouchAsk) -> JSONResponse:
        from visuels.models.devices import choose_dtype
        from visuels.review.retouch import RetouchSettings, instruct_model, retouch, retouch_model

        try:
            settings = RetouchSettings(
                prompt=ask.prompt,
                mode=ask.mode,
                variants=ask.variants,
                strength=ask.strength,
                seed=ask.seed,
                steps=ask.steps,
            )
        except ValidationError as exc:
            location, message = first_problem(exc)
            said = message.said(words(page_language(request)))
            return JSONResponse({"error": f"{location[-1]}: {said}"}, status_code=422)
        original = find_original(studio.database, studio.path_of(ask.file), studio.output_root)
        picture = read_picture(original.path)
        mask = None
        if ask.mask:
            with tempfile.TemporaryDirectory() as folder:
                mask_file = Path(folder) / "mask.png"
                mask_file.write_bytes(_decode_upload(ask.mask))
                mask = read_mask(mask_file, picture.size)
        if settings.mode == "instruct":
            model = studio.edit_model or instruct_model(None)  # none given: one line saying how to give one
        else:
            model = retouch_model(studio.database, original)
        host = studio.host()
        variants = retouch(host, model, picture, mask, settings, choose_dtype(host.device))
        token = studio.keep_session(
            RetouchSession(original=original, variants=variants, settings=settings, model=model)
        )
        urls = [f"/api/variants/{token}/{number}.jpg" for number in range(len(variants))]
        return JSONResponse({"session": token, "variants": urls})

    @app.get("/api/variants/{token}/{number}.jpg")
    def variant_preview(token: str, number: int) -> Response:
        session = studio.session(token)
        if session is None or not 0 <= number < len(session.variants):
            raise HTTPException(404, "no such variant (the studio keeps the last few retouches)")
        watermark = session.original.row["watermark"]  # a saved preview still leads to the original
        data = preview_jpeg(
            session.variants[number], watermark, studio.charter.spec.creator, PREVIEW_SIDE, studio.signing.watermark
        )
        return Response(data, media_type="image/jpeg")

    @app.post("/api/keep")
    def keep_variant(request: Request, ask: KeepAsk) -> JSONResponse:
        from visuels.review.retouch import retouch_edit

        session = studio.session(ask.session)
        if session is None or not 0 <= ask.variant < len(session.variants):
            t = words(page_language(request))
            raise HTTPException(404, t("no such variant (the studio keeps the last few retouches)"))
        original = session.original
        source = original.path
        seed = session.settings.seed + ask.variant
        target = source.with_name(f"{source.stem}-retouch-{seed}{source.suffix}")
        edit = retouch_edit(session.model, session.settings, ask.variant)
        if session.settings.mode == "instruct":  # the record names the edit model's files, as a render's
            model_sources.record(studio.database, session.model.model_hash, session.model.ref, None, None)
        done = mark_derivative(
            session.variants[ask.variant],
            original,
            target,
            edit,
            studio.charter,
            studio.database,
            studio.signing,
            studio.output_root,
        )
        return JSONResponse(_derivative_json(done, studio.output_root, words(page_language(request))))

    @app.get("/templates/{name}", response_class=HTMLResponse)
    def template_set(request: Request, name: str) -> HTMLResponse:
        files = studio.charter.templates.get(name)
        if files is None:
            raise HTTPException(404, f"the charter has no template set {name!r}")
        context = {
            "name": name,
            "formats": {format_name: template.path.name for format_name, template in files.items()},
            "findings": {format_name: template.findings for format_name, template in files.items()},
        }
        return templates.TemplateResponse(request, "template_set.html", context)

    @app.get("/api/template-preview/{name}/{format_name}.png")
    def template_preview(name: str, format_name: str) -> Response:
        template = studio.charter.templates.get(name, {}).get(format_name)
        if template is None:
            raise HTTPException(404, f"no template for {format_name} in the set {name!r}")
        return Response(template_sample(studio.charter, template), media_type="image/png")

    @app.get("/api/layers")
    def layers_download(file: str) -> Response:
        """The output's layered working file, made in a temporary folder: nothing is written
        beside the outputs by a page."""
        from visuels.review.layers import layered_file

        source = studio.path_of(file)
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / f"{source.stem}.psd"
            layered_file(source, studio.charter, studio.database, studio.output_root, target)
            data = target.read_bytes()
        headers = {"Content-Disposition": f'attachment; filename="{source.stem}.psd"'}
        return Response(data, media_type="image/vnd.adobe.photoshop", headers=headers)

    @app.get("/finalize", response_class=HTMLResponse)
    def finalize_page(request: Request, file: str = "") -> HTMLResponse:
        if file:
            studio.path_of(file)
        return templates.TemplateResponse(request, "finalize.html", {"file": file})

    @app.post("/api/finalize")
    def finalize_upload(request: Request, ask: FinalizeAsk) -> JSONResponse:
        source = studio.path_of(ask.file)
        with tempfile.TemporaryDirectory() as folder:
            dropped = Path(folder) / _dropped_name(ask.name)
            dropped.write_bytes(_decode_upload(ask.data))
            target = finalized_name(source, dropped, ask.keep)
            done = finalize_file(
                dropped, source, target, studio.charter, studio.database, studio.signing, studio.output_root
            )
        return JSONResponse(_derivative_json(done, studio.output_root, words(page_language(request))))

    return LocalOnly(app, hosts, token)
