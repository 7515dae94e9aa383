"""Working on an output elsewhere (Photoshop, GIMP, Krita…): its layered working file out, and the
finalize page, where the file edited elsewhere is dropped beside its original, marked again from
it and recorded; or, saved over the output and kept beside it by a render, finalized where it is."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from visuels._internal.i18n import words
from visuels.review import kept_edits
from visuels.review.derivatives import finalize_file, finalized_name
from visuels.studio.pages import decoded_upload, derivative_json, page_language, upload_folder

if TYPE_CHECKING:
    from visuels.studio.app import Studio

MAX_NAME_BYTES = 200  # a dropped file's name kept as it is; longer: "edited" (file systems stop at 255)
MOST_KEPT_EDITS_LISTED = 200  # the finalize page's list of kept edits: finalizing them empties it


class KeptEditAsk(BaseModel):
    file: str  # an edit a render kept beside its output, relative to the output folder


class FinalizeAsk(BaseModel):
    file: str  # the original, relative to the output folder
    name: str  # the dropped file's name
    data: str  # its bytes, base64 (a data URL is accepted)
    keep: Literal["original", "upload"] = "original"  # whose file type the finalized file has


def _dropped_name(name: str) -> str:
    """The dropped file's name as a plain file name (its record says it, its suffix may choose the
    finalized file's type): the last part of a path written with either slash; a name that is not
    one (``..``, a NUL, over 200 bytes) is ``edited`` with its suffix when that is a plain one."""
    plain = name.replace("\\", "/").rsplit("/", 1)[-1]
    if plain.strip(".") and "\x00" not in plain and len(plain.encode("utf-8", "replace")) <= MAX_NAME_BYTES:
        return plain
    suffix = Path(plain).suffix
    return "edited" + (suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", suffix) else "")


def finalize_routes(studio: Studio, templates: Jinja2Templates) -> APIRouter:
    """An output's layered file, the finalize page, and the file it sends."""
    router = APIRouter()

    @router.get("/finalize", response_class=HTMLResponse)
    def finalize_page(request: Request, file: str = "") -> HTMLResponse:
        if file:
            studio.path_of(file)
            return templates.TemplateResponse(request, "finalize.html", {"file": file})
        root = studio.output_root.resolve()
        edits = kept_edits.waiting(root, MOST_KEPT_EDITS_LISTED)
        kept = [(edit.relative_to(root).as_posix(), output.relative_to(root).as_posix()) for edit, output in edits]
        more = len(edits) == MOST_KEPT_EDITS_LISTED
        return templates.TemplateResponse(request, "finalize.html", {"file": "", "kept": kept, "more": more})

    @router.post("/api/finalize-kept")
    def finalize_kept(request: Request, ask: KeptEditAsk) -> JSONResponse:
        """An edit a render kept beside its output, marked again from that output where it lies."""
        edit = studio.path_of(ask.file)
        output = kept_edits.output_of(edit)
        if output is None:
            raise HTTPException(404, f"{ask.file}: no edit kept beside an output")
        charter = studio.edit_charter()
        done = finalize_file(edit, output, None, charter, studio.database, studio.signing, studio.output_root)
        return JSONResponse(derivative_json(done, studio.output_root, words(page_language(request))))

    @router.post("/api/finalize")
    def finalize_upload(request: Request, ask: FinalizeAsk) -> JSONResponse:
        source = studio.path_of(ask.file)
        with upload_folder() as folder:
            dropped = folder / _dropped_name(ask.name)
            dropped.write_bytes(decoded_upload(ask.data))
            target = finalized_name(source, dropped, ask.keep)
            done = finalize_file(
                dropped, source, target, studio.edit_charter(), studio.database, studio.signing, studio.output_root
            )
        return JSONResponse(derivative_json(done, studio.output_root, words(page_language(request))))

    @router.get("/api/layers")
    def layers_download(file: str) -> Response:
        """The output's layered working file, made in a temporary folder: nothing is written
        beside the outputs by a page."""
        from visuels.review.layers import layered_file

        source = studio.path_of(file)
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / f"{source.stem}.psd"
            layered_file(source, studio.edit_charter(), studio.database, studio.output_root, target)
            data = target.read_bytes()
        headers = {"Content-Disposition": f'attachment; filename="{source.stem}.psd"'}
        return Response(data, media_type="image/vnd.adobe.photoshop", headers=headers)

    return router
