"""The studio's template pages: a charter's layout templates, each filled with sample texts over a
reference picture, with what the checks found in it."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from PIL import Image
from visuels.inputs.charter import Charter
from visuels.inputs.file_names import files_in
from visuels.inputs.images import PICTURE_SUFFIXES, read_picture
from visuels.inputs.templates import Template
from visuels.postprocess.chain import postprocess
from visuels.studio.pages import PREVIEW_SIDE

if TYPE_CHECKING:
    from visuels.studio.app import Studio


SAMPLE_TEXTS = {
    "commune": "Saint-Guilhem-le-Désert",
    "headline": "Vivre en Solane, l'été",
    "call_to_action": "L'agenda de l'été : solane.example",
}


def template_sample(charter: Charter, template: Template) -> bytes:
    """A template filled with sample texts over the charter's first reference picture, as a PNG
    (a preview: never marked, never written)."""
    references = files_in(charter.references, PICTURE_SUFFIXES)
    picture = read_picture(references[0]) if references else Image.new("RGB", (512, 512), (128, 128, 128))
    result = postprocess(picture, charter, template.width, template.height, "fr", *SAMPLE_TEXTS.values(), template)
    preview = result.image
    preview.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    preview.save(buffer, format="PNG")
    return buffer.getvalue()


def template_routes(studio: Studio, templates: Jinja2Templates) -> APIRouter:
    """A template set's page, and each of its templates' preview."""
    router = APIRouter()

    @router.get("/templates/{name}", response_class=HTMLResponse)
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

    @router.get("/api/template-preview/{name}/{format_name}.png")
    def template_preview(name: str, format_name: str) -> Response:
        template = studio.charter.templates.get(name, {}).get(format_name)
        if template is None:
            raise HTTPException(404, f"no template for {format_name} in the set {name!r}")
        return Response(template_sample(studio.charter, template), media_type="image/png")

    return router
