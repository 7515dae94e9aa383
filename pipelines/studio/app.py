"""The studio's web app (FastAPI, served on 127.0.0.1 by ``visuels studio``, behind ``LocalOnly``):
what it keeps (``Studio``), and its pages, each group in its own module:

- ``reviewing``: the home page (paused reviews, campaigns) and a review grid that resumes the
  paused Prefect run;
- ``retouching``: a picker of outputs, a retouch page (brush a mask, make variants, keep one);
- ``finalizing``: an output's layered file, and a finalize page (drop a file edited elsewhere
  beside its original);
- ``template_previews``: the charter's layout templates filled with sample texts.

Every file it writes goes through ``visuels.review.derivatives.mark_derivative``: marked again and
recorded against its original.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import func, select
from visuels._internal.i18n import words
from visuels._internal.web_guard import LocalOnly
from visuels.errors import InvalidValueError, VisuelsError, plain_message
from visuels.inputs.charter import Charter
from visuels.inputs.file_names import usable_path
from visuels.marking.keys import SigningFiles
from visuels.models.devices import DeviceName
from visuels.postprocess.coherence import COHERENCE_FILE
from visuels.record import ledger
from visuels.record.database import Database, outputs_table
from visuels.review.derivatives import Original, original_charter
from visuels.studio.finalizing import finalize_routes
from visuels.studio.pages import derived_file, describe_output, page_language, page_templates, with_commune_labels
from visuels.studio.retouching import RetouchSession, picker_routes, retouch_routes
from visuels.studio.reviewing import review_routes
from visuels.studio.reviews import ReviewBackend, ReviewRun
from visuels.studio.template_previews import template_routes

if TYPE_CHECKING:  # these import torch: only the retouch endpoints load them
    from visuels.models.host import ModelHost
    from visuels.review.retouch import RetouchModel

# What /files serves: the pictures, their thumbnails and edge maps, the reports. Never the database
# of record, keys, or a temporary file being written.
SERVED_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".html", ".csv", ".json"})
KEPT_SESSIONS = 8  # retouch sessions (their variants, in memory) kept at once


@dataclass
class Studio:
    """Everything the app keeps: where outputs are, the charter and keys, the model host, retouch sessions."""

    output_root: Path
    database: Database
    charter: Charter  # the template pages' and, when given (``charter_given``), what edits are checked against
    signing: SigningFiles
    device: DeviceName = "auto"
    reviews: ReviewBackend | None = None
    edit_model: RetouchModel | None = None  # retouching by instruction, where the studio was given one
    sessions: OrderedDict[str, RetouchSession] = field(default_factory=OrderedDict)
    _host: ModelHost | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)  # the host, the sessions: endpoints run in threads
    _listed: dict[str, tuple[int, list[dict]]] = field(default_factory=dict)  # outputs(): as of a ledger row
    _review_page: tuple[tuple, bytes] | None = None  # the last review page served, and what it was made of
    charter_given: bool = False  # False: each output's edits are checked against the charter it was made with

    def edit_charter(self) -> Charter | None:
        """The charter edits are checked against; None: each output's own (``original_charter``)."""
        return self.charter if self.charter_given else None

    def charter_of(self, original: Original) -> Charter:
        return self.edit_charter() or original_charter(self.database, original)

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
        try:
            usable_path(relative)  # a NUL, a name longer than file systems allow: no such file either
        except InvalidValueError:
            raise HTTPException(404, f"{relative}: no such output") from None
        try:
            path = (self.output_root / relative).resolve()
        except (RuntimeError, OSError):  # a symbolic link that leads back to itself: it names no file
            raise HTTPException(404, f"{relative}: no such output") from None
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
        return with_commune_labels(
            [
                describe_output(row) | {"derivatives": [derived_file(done) for done in made.get(row["job_key"], [])]}
                for row in rows
            ]
        )


# A dropped file travels as base64 (4/3 of its size): 512 MB holds a 120-megapixel print TIFF
# (360 MB), the largest picture read at all; beyond, the studio would only fill its memory.
MAX_REQUEST_BYTES = 512 * 2**20


def create_app(studio: Studio, hosts: Sequence[str] = (), token: str | None = None) -> LocalOnly:
    """The studio, behind the checks every served page has (``visuels._internal.web_guard``): the Host
    names it answers to (``hosts`` besides loopback's), the Origin of state-changing requests,
    and ``token`` when it is bound beyond loopback."""
    app = FastAPI(title="visuels studio", docs_url=None, redoc_url=None, openapi_url=None)
    templates = page_templates()

    @app.exception_handler(VisuelsError)
    async def _bad_input(request: Request, exc: VisuelsError) -> JSONResponse:
        return JSONResponse({"error": exc.said(words(page_language(request)))}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _not_as_sent(request: Request, exc: RequestValidationError) -> JSONResponse:
        """A request the studio's pages never send (a script, a page of an older studio): one line,
        never its body echoed (FastAPI's own answer failed with a 500 on a body that is not text)."""
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        refused = VisuelsError(request.url.path, where, plain_message(first))
        return JSONResponse({"error": refused.said(words(page_language(request)))}, status_code=422)

    @app.get("/files/{relative:path}")
    def files(relative: str) -> FileResponse:
        return FileResponse(studio.path_of(relative))

    for routes in (review_routes, picker_routes, retouch_routes, finalize_routes, template_routes):
        app.include_router(routes(studio, templates))
    return LocalOnly(app, hosts, token, max_body_bytes=MAX_REQUEST_BYTES)
