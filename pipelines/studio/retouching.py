"""The studio's retouch pages: a picker of the campaign's outputs, and a retouch (a brushed mask
repainted by the model that made the picture, or an instruction to an edit model) made in
variants, the variant kept (marked again and recorded)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlencode

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from PIL import Image
from pydantic import BaseModel, ValidationError
from visuels._internal.i18n import words
from visuels.inputs.images import read_mask, read_picture
from visuels.inputs.yamlfiles import first_problem
from visuels.marking.mark import preview_jpeg
from visuels.record import model_sources
from visuels.review import kept_edits
from visuels.review.derivatives import Original, find_original, label_box, mark_derivative
from visuels.studio.pages import PREVIEW_SIDE, decoded_upload, derivative_json, page_language, upload_folder

if TYPE_CHECKING:  # these import torch: only the retouch endpoints load them
    from visuels.review.retouch import RetouchModel, RetouchSettings
    from visuels.studio.app import Studio

PAGE_SIZE = 24  # outputs a picker page shows


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


@dataclass
class RetouchSession:
    original: Original  # its record, found once when the variants were made
    variants: list[Image.Image]
    settings: RetouchSettings
    model: RetouchModel


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


def edits_kept(studio: Studio, output: dict) -> list[str]:
    """The edits a render found saved over ``output`` and kept beside it, not finalized yet: the
    picker's card says so, and finalizes them (names under the output folder)."""
    root = studio.output_root.resolve()
    return [edit.relative_to(root).as_posix() for edit in kept_edits.waiting_beside(root / output["file"])]


def locked_zone(studio: Studio, original: Original) -> dict[str, float]:
    """Where the AI label lies on an output, as shares of the picture: the retouch page draws the
    locked zone over the picture at any size."""
    with Image.open(original.path) as opened:
        size = opened.size
    box = label_box(studio.charter_of(original), original, size)
    return {
        "left": box.left / size[0],
        "top": box.top / size[1],
        "width": box.width / size[0],
        "height": box.height / size[1],
    }


def brushed_mask(data_url: str, size: tuple[int, int]) -> np.ndarray:
    """The strokes a designer brushed (a PNG data URL), read and checked as a mask file is."""
    with upload_folder() as folder:
        mask_file = folder / "brushed-mask.png"
        mask_file.write_bytes(decoded_upload(data_url))
        return read_mask(mask_file, size)


def picker_routes(studio: Studio, templates: Jinja2Templates) -> APIRouter:
    """The picker of the campaign's outputs, and the retouch page of the one picked."""
    router = APIRouter()

    @router.get("/retouch", response_class=HTMLResponse)
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
            edit_model = studio.edit_model.description if studio.edit_model else None
            shown = {"file": file, "locked": locked_zone(studio, original), "edit_model": edit_model}
            return templates.TemplateResponse(request, "retouch.html", shown)
        chosen = campaign or next(iter(studio.campaigns()), "")
        wanted = {"commune": commune, "format": format, "audience": audience, "language": language}
        context = {"campaign": chosen, "campaigns": studio.campaigns()} | picker_page(
            studio.outputs(chosen), wanted, status, page
        )
        context["outputs"] = [output | {"kept_edits": edits_kept(studio, output)} for output in context["outputs"]]
        context["query"] = urlencode({"campaign": chosen, **wanted, "status": status})
        return templates.TemplateResponse(request, "pick.html", context)

    return router


def retouch_routes(studio: Studio, templates: Jinja2Templates) -> APIRouter:
    """A retouch's variants made, previewed, and the one kept."""
    router = APIRouter()

    @router.post("/api/retouch")
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
        mask = brushed_mask(ask.mask, picture.size) if ask.mask else None
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

    @router.get("/api/variants/{token}/{number}.jpg")
    def variant_preview(token: str, number: int) -> Response:
        session = studio.session(token)
        if session is None or not 0 <= number < len(session.variants):
            raise HTTPException(404, "no such variant (the studio keeps the last few retouches)")
        watermark = session.original.row["watermark"]  # a saved preview still leads to the original
        data = preview_jpeg(
            session.variants[number], watermark, studio.charter.spec.creator, PREVIEW_SIDE, studio.signing.watermark
        )
        return Response(data, media_type="image/jpeg")

    @router.post("/api/keep")
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
            studio.edit_charter(),
            studio.database,
            studio.signing,
            studio.output_root,
        )
        return JSONResponse(derivative_json(done, studio.output_root, words(page_language(request))))

    return router
