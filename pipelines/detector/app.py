"""The public detector (FastAPI, served by ``visuels detector serve`` on 127.0.0.1, published
through the region's web server): anyone uploads a picture and learns whether it is this
deployment's AI picture, with a signed result to keep (Code of Practice, Commitment 2).

Pages, in French and English, plain HTML forms (no script: they work with a keyboard, a screen
reader, and without JavaScript): the upload page and its result, a page describing the marks and
the API, and a form to report a wrong label (kept in the record for the region to answer).
``POST /api/detect`` takes the picture as the request body (or a form's ``file``) and answers the
signed JSON of ``visuels detect --json``; ``GET /api/public-key`` gives the key results are signed
with. The watermark keys never leave the server. Nothing uploaded is kept: each picture is read
from a private temporary folder, removed before the answer is sent. Limits: size, pixels,
requests per client per minute, detections at once.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import io
import json
import math
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from PIL import Image, UnidentifiedImageError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from visuels._internal.i18n import LANGUAGES, browser_language, user_language, words
from visuels._internal.web_guard import LocalOnly, is_loopback
from visuels.errors import Text
from visuels.inputs.charter import Charter
from visuels.inputs.images import ImageInputError, mistaken_kind
from visuels.marking.watermark_keys import WatermarkKey
from visuels.record.database import Database
from visuels.record.reports import LabelReport, add_report
from visuels.review.detect import (
    DETECTOR,
    MARK_NAMES,
    Detection,
    Mark,
    detect_file,
    detector_version,
    signed_result,
    verdict_line,
)

TEMPLATES = Path(__file__).parent / "templates"
# What the marks are read from: what visuels exports, and AVIF, which browsers save web pictures as.
SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "AVIF": ".avif"}
LANGUAGE_COOKIE = "visuels_lang"
REPORT_MAX_BYTES = 16 * 1024
REPORT_FIELDS = {  # the report form's fields, as its labels say them
    "kind": Text("What is wrong"),
    "where_seen": Text("Where you saw the picture"),
    "description": Text("What you noticed"),
    "sha256": Text("The picture's SHA-256 (optional)"),
    "contact": Text("Your e-mail, if you want an answer (optional)"),
}


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 40 * 1024 * 1024  # a 300-dpi A3 poster as PNG stays under it
    max_pixels: int = 60_000_000
    per_minute: int = 20  # detections per client per minute
    at_once: int = 2  # detections running at once (each holds about 1 GB at the pixel limit)


class RefusedError(Exception):
    """A request the service answers with ``status`` and one line in the reader's language."""

    def __init__(self, status: int, text: Text, retry_after: int | None = None) -> None:
        super().__init__(str(text))
        self.status, self.text, self.retry_after = status, text, retry_after


@dataclass
class RateLimit:
    """At most ``per_minute`` requests per client in any sliding minute."""

    per_minute: int
    _seen: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, client: str, now: float) -> int:
        """0 when ``client`` may go on (counted), else the seconds until it may."""
        with self._lock:
            times = self._seen.setdefault(client, deque())
            while times and times[0] <= now - 60:
                times.popleft()
            if len(times) >= self.per_minute:
                return max(1, int(times[0] + 60 - now) + 1)
            times.append(now)
            if len(self._seen) > 10_000:  # forget idle clients: memory stays bounded
                for idle in [name for name, seen in self._seen.items() if not seen]:
                    del self._seen[idle]
            return 0


@dataclass
class DetectorService:
    """What the service holds: the charter (its label), trust anchors, the watermark keys, the
    detector's signing key, where reports go, and its limits."""

    charter: Charter
    trust_anchors: Path
    keys: list[WatermarkKey]
    signing_key: ec.EllipticCurvePrivateKey
    database_url: str
    limits: Limits = field(default_factory=Limits)
    behind_proxy: bool = False  # trust X-Forwarded-For from a proxy on this machine, for the rate limit
    # Reads the starting-noise mark by inverting a model (``visuels.review.deep_detect``); None: not read.
    deep: Callable[[Image.Image, str | None], Mark] | None = None
    _rate: RateLimit = field(init=False)
    _running: threading.BoundedSemaphore = field(init=False)
    _database: Database | None = None
    _database_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rate = RateLimit(self.limits.per_minute)
        self._running = threading.BoundedSemaphore(self.limits.at_once)

    def database(self) -> Database:
        with self._database_lock:  # opened on the first report: detection needs no record
            if self._database is None:
                self._database = Database(self.database_url)
            return self._database

    def client(self, request: Request) -> str:
        peer = request.client.host if request.client else "unknown"
        forwarded = request.headers.get("x-forwarded-for")
        if self.behind_proxy and forwarded and is_loopback(peer):
            return forwarded.split(",")[-1].strip()  # the address the proxy itself saw
        return peer

    def admit(self, request: Request) -> None:
        wait = self._rate.wait_for(self.client(request), time.monotonic())
        if wait:
            raise RefusedError(
                429, Text("too many pictures from your address: try again in {seconds} s", seconds=wait), wait
            )

    def detect(self, data: bytes, name: str) -> Detection:
        """Detect the marks of an uploaded picture, read from a private temporary folder."""
        suffix = self._suffix(data)
        if not self._running.acquire(timeout=30):
            raise RefusedError(503, Text("the detector is busy: try again in a minute"), 60)
        try:
            with tempfile.TemporaryDirectory(prefix="visuels-detect-") as folder:
                path = Path(folder) / f"upload{suffix}"
                path.write_bytes(data)
                try:
                    detection = detect_file(path, self.charter, self.trust_anchors, self.keys, self.deep)
                except ImageInputError:
                    raise RefusedError(400, Text("this file is not a picture the detector can read")) from None
        finally:
            self._running.release()
        return detection.model_copy(update={"file": name})

    def _suffix(self, data: bytes) -> str:
        """The picture's kind from its first bytes, within the limits, before anything is decoded."""
        if len(data) > self.limits.max_bytes:
            raise RefusedError(413, Text("the picture is over {mb} MB", mb=self.limits.max_bytes // (1024 * 1024)))
        try:
            with Image.open(io.BytesIO(data)) as image:
                kind, pixels = image.format, image.width * image.height
        except Image.DecompressionBombError:  # past Pillow's own limit, far above ours
            kind, pixels = None, math.inf
        except (UnidentifiedImageError, OSError, ValueError):
            kind, pixels = None, 0
        if pixels <= self.limits.max_pixels and kind not in SUFFIXES:
            read_here = Text("the detector reads PNG, JPEG, WebP and AVIF pictures")
            raise RefusedError(415, (kind is None and mistaken_kind(data)) or read_here)
        if pixels > self.limits.max_pixels:
            raise RefusedError(
                413, Text("the picture is over {megapixels} million pixels", megapixels=self.limits.max_pixels // 10**6)
            )
        return SUFFIXES[kind]

    def signed(self, detection: Detection) -> dict:
        return signed_result([detection], self.signing_key)

    def public_key_pem(self) -> str:
        return (
            self.signing_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )


def page_language(request: Request) -> str:
    picked = request.query_params.get("lang") or request.cookies.get(LANGUAGE_COOKIE)
    if picked in LANGUAGES:
        return picked
    return browser_language(request.headers.get("accept-language")) or user_language()


async def read_upload(request: Request, max_bytes: int) -> tuple[bytes, str]:
    """The picture a request carries, as its body or a form's ``file`` field, and its name; read no
    further than the limit allows."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + 64 * 1024:
        raise RefusedError(413, Text("the picture is over {mb} MB", mb=max_bytes // (1024 * 1024)))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes + 64 * 1024:  # room for a form's headers
            raise RefusedError(413, Text("the picture is over {mb} MB", mb=max_bytes // (1024 * 1024)))
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        return bytes(body), request.headers.get("x-file-name", "upload")[:200]
    form = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {kind}\r\n\r\n".encode("latin-1") + bytes(body)
    )
    files = [part for part in form.iter_parts() if part.get_param("name", header="content-disposition") == "file"]
    if not files:
        raise RefusedError(400, Text("choose a picture to check"))
    if len(files) > 1:  # answering for the first alone would leave the others seemingly checked
        raise RefusedError(400, Text("one picture per request: send each picture on its own"))
    return files[0].get_payload(decode=True) or b"", (files[0].get_filename() or "upload")[:200]


class Pages:
    """The detector's pages, in the reader's language (a ``lang`` query parameter, kept in a
    cookie, else the browser's)."""

    def __init__(self) -> None:
        self.templates = Jinja2Templates(directory=TEMPLATES)

    def __call__(self, request: Request, name: str, status: int = 200, **values: object) -> HTMLResponse:
        lang = page_language(request)
        response = self.templates.TemplateResponse(
            request,
            name,
            {"_": words(lang), "lang": lang, "version": detector_version(), **values},
            status_code=status,
        )
        if request.query_params.get("lang") in LANGUAGES:
            response.set_cookie(LANGUAGE_COOKIE, request.query_params["lang"], samesite="strict")
        return response


def detection_routes(service: DetectorService, page: Pages) -> APIRouter:
    """The upload page and its result, the API, and the page describing the marks."""
    router = APIRouter()

    @router.get("/")
    def home(request: Request) -> HTMLResponse:
        return page(request, "home.html")

    @router.post("/")
    async def detect_page(request: Request) -> HTMLResponse:
        service.admit(request)
        data, name = await read_upload(request, service.limits.max_bytes)
        detection = await run_in_threadpool(service.detect, data, name)
        t = words(page_language(request))
        document = json.dumps(service.signed(detection), indent=1, ensure_ascii=False)
        return page(
            request,
            "result.html",
            detection=detection,
            verdict=verdict_line(detection).said(t),
            marks=[(MARK_NAMES[name].said(t), mark.found, mark.said(t)) for name, mark in detection.marks.items()],
            download="data:application/json;base64," + base64.b64encode(document.encode()).decode("ascii"),
        )

    @router.post("/api/detect")
    async def detect_api(request: Request) -> JSONResponse:
        service.admit(request)
        data, name = await read_upload(request, service.limits.max_bytes)
        detection = await run_in_threadpool(service.detect, data, name)
        return JSONResponse(service.signed(detection))

    @router.get("/api/public-key")
    def public_key() -> Response:
        return Response(service.public_key_pem(), media_type="application/x-pem-file")

    @router.get("/marks")
    def marks(request: Request) -> HTMLResponse:
        example = f'curl --data-binary @picture.jpg -H "Content-Type: image/jpeg" {request.base_url}api/detect'
        shown = {"limits": service.limits, "public_key": service.public_key_pem(), "api_example": example}
        return page(request, "marks.html", **shown)

    return router


def report_routes(service: DetectorService, page: Pages) -> APIRouter:
    """The form to report a wrong label, kept in the record for the region to answer."""
    router = APIRouter()

    @router.get("/report")
    def report_form(request: Request, sha256: str = "") -> HTMLResponse:
        return page(request, "report.html", sha256=sha256[:64], values={})

    @router.post("/report")
    async def report_sent(request: Request) -> HTMLResponse:
        service.admit(request)
        body = await request.body()  # a url-encoded form: a few short fields, no file
        if len(body) > REPORT_MAX_BYTES:
            raise RefusedError(413, Text("the report is too long"))
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        values = {name: form.get(name, "").strip() for name in REPORT_FIELDS}
        try:
            report = LabelReport(
                kind=values["kind"],  # type: ignore[arg-type]
                where_seen=values["where_seen"],
                description=values["description"],
                sha256=values["sha256"].lower() or None,
                contact=values["contact"] or None,
                language=page_language(request),  # type: ignore[arg-type]
            )
        except ValidationError as exc:
            wrong = str(exc.errors()[0]["loc"][0])
            said = REPORT_FIELDS.get(wrong, Text("What is wrong")).said(words(page_language(request)))
            shown = {"sha256": values["sha256"], "values": values, "wrong": wrong, "wrong_label": said}
            return page(request, "report.html", status=400, **shown)
        number = await run_in_threadpool(add_report, service.database(), report)
        return page(request, "report.html", sha256="", values={}, received=number)

    return router


async def _safe_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
    response = await call_next(request)
    # No script, no frame, nothing from elsewhere: a page that cannot be turned against its reader.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self';"
        " frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    # same-origin, not no-referrer: with no-referrer a browser sends its forms with "Origin: null",
    # which the origin check refuses.
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def create_app(service: DetectorService, hosts: tuple[str, ...] = ()) -> LocalOnly:
    """The detector's app, answering only to loopback and ``hosts`` (the names the region's web
    server publishes it under), behind the checks of ``LocalOnly``."""
    app = FastAPI(title=DETECTOR, docs_url=None, redoc_url=None, openapi_url=None)
    page = Pages()
    app.middleware("http")(_safe_headers)

    @app.exception_handler(RefusedError)
    async def _refused(request: Request, refusal: RefusedError) -> Response:
        said = refusal.text.said(words(page_language(request)))
        headers = {"Retry-After": str(refusal.retry_after)} if refusal.retry_after else None
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": said}, status_code=refusal.status, headers=headers)
        response = page(request, "home.html", status=refusal.status, error=said)
        if headers:
            response.headers.update(headers)
        return response

    app.include_router(detection_routes(service, page))
    app.include_router(report_routes(service, page))
    return LocalOnly(app, hosts)
