"""What every studio page shares: its language, its templates, and how it shows an output, a file
retouched or finalized from one, and what a designer uploads."""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import HTTPException, Request
from fastapi.templating import Jinja2Templates
from visuels._internal.i18n import LANGUAGES, Words, browser_language, user_language, words
from visuels.errors import VisuelsError
from visuels.planning.jobs import KEY_PREFIX_LENGTH
from visuels.postprocess import findings
from visuels.review.derivatives import Derivative
from visuels.review.report import commune_code, commune_labels

TEMPLATES = Path(__file__).parent / "templates"
PREVIEW_SIDE = 1024  # variants and template previews are shown at most this large
LANGUAGE_COOKIE = "visuels_lang"  # set by the pages when the designer picks a language (?lang=)


def page_templates() -> Jinja2Templates:
    """The pages' templates, each given its words (``page_words``)."""
    templates = Jinja2Templates(directory=str(TEMPLATES), context_processors=[page_words])
    templates.env.filters["finding"] = findings.said  # a recorded reason in the page's words
    return templates


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


def describe_output(row: dict) -> dict:
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


def with_commune_labels(described: list[dict]) -> list[dict]:
    """Communes of one name told apart by their code, as the report and the folders do."""
    labels = commune_labels((picture["insee"], picture["commune"]) for picture in described)
    for picture in described:
        picture["commune"] = labels[picture["insee"]]
    return described


def derived_file(row: dict) -> dict:
    """A retouched or edited file: served (``/files/``) when it lies in the output folder."""
    return {"name": Path(row["file"]).name, "file": row["file"], "served": not Path(row["file"]).is_absolute()}


def decoded_upload(data: str) -> bytes:
    try:
        return base64.b64decode(data.split(",", 1)[1] if data.startswith("data:") else data, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, "the upload is not base64 data") from None


@contextmanager
def upload_folder() -> Iterator[Path]:
    """A temporary folder for what a designer uploads; a refusal names the upload as the designer
    knows it (``retouche.png: 8x8 pixels…``), not by the server's temporary path."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            yield Path(folder)
        except VisuelsError as refused:
            refused.file = refused.file.removeprefix(f"{folder}/")
            raise


def derivative_json(done: Derivative, output_root: Path, t: Words) -> dict:
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
