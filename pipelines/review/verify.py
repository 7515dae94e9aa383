"""Checking a file's AI marking, layer by layer, and finding its ledger record.

Layers: the visible label (the charter's "IA" badge, found by template matching), the invisible
watermark (and whether the ledger knows its id), the IPTC XMP digital source type, and the C2PA
manifest (Trusted, Valid, Invalid or missing). When the metadata was stripped, the record is
found through the watermark or, failing that, the perceptual hash.

A file passes only when every layer is there and they agree with each other: C2PA trusted by the
configured anchors (merely Valid, i.e. signed by anyone, passes only when allowed), a source
type that says generated, a soft binding equal to the watermark, and the file's sha256 equal to
what the ledger recorded for it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from pydantic import BaseModel, PrivateAttr
from visuels.errors import Text
from visuels.inputs.charter import Charter, load_charter
from visuels.inputs.images import ImageInputError, read_file, read_picture_and_xmp
from visuels.marking import watermark
from visuels.marking.c2pa_manifest import ManifestState, read_manifest_state
from visuels.marking.framing import Box
from visuels.marking.keys import keys_dir
from visuels.marking.phash import MATCH_DISTANCE, perceptual_hash
from visuels.marking.watermark_keys import WatermarkKey, find_mark, known_keys
from visuels.marking.xmp import DigitalSourceType
from visuels.postprocess.label import draw_ai_label
from visuels.record import ledger
from visuels.record.database import Database

LABEL_MATCH = 0.75  # normalised correlation above which the label's badge counts as seen
CORNER_SHARE = 0.4  # the label is looked for in the top and bottom bands this high
# In a screenshot the picture is shown smaller than made: its label's text down to this size, where
# a small badge looks more like a page's words, so it must match more closely to count.
SHOWN_TEXT_PX = 5
SHOWN_LABEL_MATCH = 0.8
SHOWN_AREA_SIDE = 2600  # pixels: a phone's screenshot, whole; a larger area is looked at scaled down to it
# Correlation ignores contrast: a flat sky with a faint grain can match the badge's shape. A badge
# seen has at least this share of the drawn one's contrast (standard deviation).
BADGE_CONTRAST_SHARE = 0.5
SOURCE_TYPE = re.compile(r"DigitalSourceType(?:=\"|>)\s*([^\"<\s]+)")
C2PA_STATES = {
    "Trusted": Text("Trusted"),
    "Valid": Text("Valid"),
    "Invalid": Text("Invalid"),
    "missing": Text("missing"),
}
FOUND_BY = {"watermark": Text("watermark"), "perceptual hash": Text("perceptual hash")}  # how a record was found


class Check(BaseModel):
    """One layer or cross-check: whether it passed, and why (in English in ``--json``; ``said``
    gives the words in the reader's language)."""

    passed: bool
    detail: str
    _text: Text | None = PrivateAttr(default=None)

    @classmethod
    def of(cls, passed: bool, text: Text) -> Check:
        check = cls(passed=passed, detail=str(text))
        check._text = text
        return check

    def said(self, words: Callable[..., str]) -> str:
        return self._text.said(words) if self._text else self.detail


class FileReport(BaseModel):
    file: str
    error: str | None = None
    sha256: str | None = None
    label_seen: bool = False
    watermark: str | None = None
    watermark_in_ledger: bool = False
    watermark_geometry: str = ""  # how the picture was found changed: flipped, turned...
    watermark_key: str | None = None  # the id of the deployment's key that read it
    # Not found, and the manifest names a key this machine does not hold: nothing could read it here.
    watermark_key_missing: str | None = None
    xmp_source_type: str | None = None
    c2pa: str = "missing"
    c2pa_expired: bool = False  # Invalid only as its signer's certificate expired since (no time-stamp)
    c2pa_soft_binding: str | None = None
    c2pa_edited_from: str | None = None  # the parent ingredient's title, for an edited file
    record_searched: bool = True  # False: no database of record was at hand, only the file's own marks
    ledger_record: dict | None = None
    found_by: str | None = None
    original: dict | None = None  # for a retouched or edited file: the output it was made from
    lineage: list[dict] = []  # its ledger rows, newest first, back to the first export
    checks: dict[str, Check] = {}  # each layer and cross-check, by name; ``ok`` when all pass
    ok: bool = False
    _error_text: Text | None = PrivateAttr(default=None)  # ``error`` in any language
    _geometry: Text | None = PrivateAttr(default=None)  # ``watermark_geometry`` in any language

    def error_said(self, words: Callable[..., str]) -> str:
        """Why the file could not be read, in the language of ``words``."""
        return self._error_text.said(words) if self._error_text else (self.error or "")

    def summary(self) -> Text:
        """The file's verdict in one line: ok or BAD, each layer, and its record."""
        record, original = self.ledger_record, self.original
        where = (
            Text(
                "ledger #{id} by {how} (job {job})",
                id=record["id"],
                how=FOUND_BY[self.found_by],
                job=record["job_key"][:12],
            )
            if record and self.found_by
            else Text("no ledger record")
            if self.record_searched
            else Text("no record found: judged from its marks alone")
        )
        if original:
            where = Text(
                "{where}; made from {file} (ledger #{id}, job {job}, sha256 {sha256})",
                where=where,
                file=original["file"],
                id=original["ledger_id"],
                job=original["job_key"][:12],
                sha256=original["sha256"][:12],
            )
        return Text(
            "{state} {file}: label {label}, watermark {watermark}{geometry}, XMP {xmp}, C2PA {c2pa}; {where}",
            state="ok " if self.ok else "BAD",
            file=self.file,
            label=Text("yes") if self.label_seen else Text("no"),
            watermark=self.watermark or Text("none"),
            geometry=Text(" (found {how})", how=self._geometry) if self._geometry else "",
            xmp=Text("yes") if self.xmp_source_type else Text("no"),
            c2pa=Text("Invalid (its certificate expired since)")
            if self.c2pa_expired
            else C2PA_STATES.get(self.c2pa, self.c2pa),
            where=where,
        )


def _badge_templates(charter: Charter) -> tuple[tuple[int, np.ndarray], ...]:
    """The label's badge ("IA" on its plate) at text sizes from the charter minimum to ~100 px:
    each with its text size."""
    return _drawn_badges(charter.path, charter.hash)


@lru_cache(maxsize=4)
def _drawn_badges(charter_path: Path, charter_hash: str) -> tuple[tuple[int, np.ndarray], ...]:
    # Keyed by the charter's hash, so an edited charter is drawn again; drawn once per process.
    charter = load_charter(charter_path)
    templates = []
    size = charter.spec.ai_label.min_text_px
    while size <= 100:
        side = max(64, round(size / charter.spec.ai_label.text_share))
        labelled, label = draw_ai_label(Image.new("RGB", (side, side), (128, 128, 128)), charter, "fr")
        box = label.box
        padding = max(3, label.text_px // 3)
        badge_right = box.left + padding + round(label.text_px * 1.6) + 3 * padding
        crop = labelled.crop((box.left, box.top, min(box.right, badge_right), box.bottom)).convert("L")
        templates.append((label.text_px, np.asarray(crop, dtype=np.float32)))
        size = round(size * 1.15) + 1
    return tuple(templates)


def _shown_badges(charter: Charter) -> tuple[np.ndarray, ...]:
    """The badges as a picture shown at another size shows them, text from ``SHOWN_TEXT_PX`` to
    100 px in steps of a tenth (a screenshot's scale is anything): each drawn one scaled down."""
    drawn = _badge_templates(charter)
    shown, size = [], SHOWN_TEXT_PX
    while size <= drawn[-1][0]:
        text_px, template = next((text_px, template) for text_px, template in drawn if text_px >= size)
        factor = size / text_px
        shown.append(cv2.resize(template, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA))
        size = max(size + 1, round(size * 1.1))
    return tuple(shown)


def label_seen_around(rgb: np.ndarray, charter: Charter, part: Box) -> bool:
    """Whether the charter's label badge appears near ``part`` of an upload (a screenshot of a page),
    where the watermark was found: the part grown by its own size each way, because the part found
    may be only the picture's busiest area and the label sits at its edge."""
    left, top, right, bottom = part
    width, height = right - left, bottom - top
    around = rgb[max(0, top - height) : bottom + height, max(0, left - width) : right + width]
    grey = cv2.cvtColor(np.ascontiguousarray(around), cv2.COLOR_RGB2GRAY).astype(np.float32)
    factor = SHOWN_AREA_SIDE / max(grey.shape)
    if factor < 1:  # a photograph of a screen: its label is large, its pixels many
        grey = cv2.resize(grey, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return any(_badge_in(grey, template, SHOWN_LABEL_MATCH) for template in _shown_badges(charter))


def _badge_in(grey: np.ndarray, template: np.ndarray, threshold: float) -> bool:
    """Whether ``template`` matches somewhere in ``grey`` at ``threshold``, with a badge's contrast."""
    height, width = template.shape
    if grey.shape[0] < height or grey.shape[1] < width:
        return False
    scores = cv2.matchTemplate(grey, template, cv2.TM_CCOEFF_NORMED)
    least_contrast = BADGE_CONTRAST_SHARE * float(template.std())
    return any(
        float(grey[top : top + height, left : left + width].std()) >= least_contrast
        for top, left in np.argwhere(scores >= threshold)
    )


def label_seen(rgb: np.ndarray, charter: Charter) -> bool:
    """Whether the charter's label badge appears near the top or the bottom edge: in a corner, or
    moved inward along the edge to stay inside a platform's centred crop (``keep_in_crops``)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    height = grey.shape[0]
    band = max(1, round(height * CORNER_SHARE))
    bands = [grey[:band], grey[height - band :]]
    return any(_badge_in(area, template, LABEL_MATCH) for _, template in _badge_templates(charter) for area in bands)


def _original(chain: list[dict]) -> dict | None:
    """The first row of another job in a file's lineage: the output a derivative was made from."""
    for row in chain[1:]:
        if row["job_key"] != chain[0]["job_key"]:
            return {"file": row["file"], "job_key": row["job_key"], "sha256": row["sha256"], "ledger_id": row["id"]}
    return None


def find_record(
    database: Database, watermark: str | None = None, phash: str | None = None
) -> tuple[dict | None, str | None]:
    """The newest ledger row with this watermark id, else the nearest perceptual hash; and how it was found."""
    if watermark:
        row = ledger.by_watermark(database, watermark)
        if row is not None:
            return row, "watermark"
    if phash:
        row = ledger.nearest_by_phash(database, phash, MATCH_DISTANCE)
        if row is not None:
            return row, "perceptual hash"
    return None, None


@dataclass(frozen=True)
class FileMarks:
    """What a file's bytes and pixels say, read once: what ``verify`` and ``detect`` judge."""

    sha256: str
    picture: Image.Image
    pixels: np.ndarray
    found: watermark.Detection
    payload: str | None  # the watermark's, in hex
    key: WatermarkKey | None  # the deployment's key that read it
    key_ids_tried: frozenset[str]
    source_type: str | None  # the XMP's IPTC digital source type
    manifest: ManifestState
    label_seen: bool


def read_marks(
    path: Path, charter: Charter, trust_anchors: Path | None, keys: list[WatermarkKey] | None = None
) -> FileMarks:
    """Every mark of ``path``, the watermark tried with ``keys`` (default: every key the deployment
    holds); a file that cannot be read raises :class:`ImageInputError`."""
    data = read_file(path, "file")
    picture, xmp = read_picture_and_xmp(path, "file", data)
    pixels = np.asarray(picture)
    tried = known_keys(keys_dir()) if keys is None else keys
    found, key = find_mark(pixels, tried)
    source = SOURCE_TYPE.search(xmp) if xmp else None
    return FileMarks(
        sha256=hashlib.sha256(data).hexdigest(),
        picture=picture,
        pixels=pixels,
        found=found,
        payload=f"{found.payload:016x}" if found.payload is not None else None,
        key=key,
        key_ids_tried=frozenset(each.id for each in tried),
        source_type=source.group(1) if source else None,
        manifest=read_manifest_state(path, trust_anchors),
        label_seen=_label_seen_where_found(pixels, charter, found),
    )


def _label_seen_where_found(pixels: np.ndarray, charter: Charter, found: watermark.Detection) -> bool:
    """The label looked for where the watermark says the picture is: around the part of a larger
    upload it was found in, or in the corners of the upload, straightened if seen at an angle."""
    if found.within is not None:
        return label_seen_around(pixels, charter, found.within)
    return label_seen(found.keystone.straighten(pixels) if found.keystone else pixels, charter)


def verify_file(
    path: Path, charter: Charter, database: Database | None, trust_anchors: Path | None, allow_untrusted: bool = False
) -> FileReport:
    """Check every marking layer of one file; a file that cannot be read gets an error, not an exception.

    With no ``database`` (none was found), the file is judged from its own marks: each must be
    there and agree with the others; the record's checks (watermark known, sha256 recorded) are
    left out, and the report says so.
    """
    report = FileReport(file=str(path))
    try:
        marks = read_marks(path, charter, trust_anchors)
    except ImageInputError as exc:
        unreadable = report.model_copy(update={"error": exc.message})
        unreadable._error_text = exc.text
        return unreadable
    found, mark, manifest, digest = marks.found, marks.payload, marks.manifest, marks.sha256
    record, found_by = (
        find_record(database, watermark=mark, phash=perceptual_hash(marks.pixels)) if database else (None, None)
    )
    chain = ledger.lineage(database, record) if database and record else []
    report = report.model_copy(
        update={
            "sha256": digest,
            "record_searched": database is not None,
            "label_seen": marks.label_seen,
            "watermark": mark,
            "watermark_in_ledger": found_by == "watermark",
            "watermark_geometry": str(found.geometry() or ""),
            "watermark_key": marks.key.id if marks.key else None,
            "watermark_key_missing": manifest.watermark_key_id
            if mark is None and manifest.watermark_key_id and manifest.watermark_key_id not in marks.key_ids_tried
            else None,
            "xmp_source_type": marks.source_type,
            "c2pa": manifest.state,
            "c2pa_expired": manifest.expired_only,
            "c2pa_soft_binding": manifest.soft_binding,
            "c2pa_edited_from": manifest.edited_from,
            "ledger_record": record,
            "found_by": found_by,
            "original": _original(chain),
            "lineage": [
                {key: row[key] for key in ("id", "file", "job_key", "sha256", "prompt", "approval")} for row in chain
            ],
        }
    )
    report._geometry = found.geometry()
    in_ledger = bool(ledger.by_sha256(database, digest)) if database else None
    checks = marking_checks(report, allow_untrusted, sha256_in_ledger=in_ledger)
    return report.model_copy(update={"checks": checks, "ok": all(check.passed for check in checks.values())})


def marking_checks(report: FileReport, allow_untrusted: bool, sha256_in_ledger: bool | None) -> dict[str, Check]:
    """Each layer, and whether the layers agree: the watermark, the C2PA soft binding and the ledger
    (``sha256_in_ledger`` None: no record to ask; the watermark then only has to be there)."""
    source = report.xmp_source_type
    generated = {kind.value for kind in DigitalSourceType}
    record = report.ledger_record
    geometry = Text(" (found {how})", how=report._geometry) if report._geometry else ""
    not_found = (
        Text(
            "not read: marked with watermark key {key}, which {folder} does not hold",
            key=report.watermark_key_missing,
            folder=keys_dir().resolve(),
        )
        if report.watermark_key_missing
        else Text("no watermark found")
    )
    bound = report.c2pa_soft_binding is not None and report.c2pa_soft_binding == report.watermark
    checks = {
        "label": Check.of(
            report.label_seen,
            Text("the charter's AI label is visible") if report.label_seen else Text("no AI label in any corner"),
        ),
        "watermark": _watermark_alone(report.watermark, geometry, not_found)
        if sha256_in_ledger is None
        else Check.of(
            report.watermark_in_ledger,
            Text("payload {payload}, in the ledger{geometry}", payload=report.watermark, geometry=geometry)
            if report.watermark_in_ledger
            else Text("payload {payload}, unknown to the ledger", payload=report.watermark)
            if report.watermark
            else not_found,
        ),
        "xmp": Check.of(
            source in generated,
            Text("IPTC digital source type {source}", source=source)
            if source in generated
            else Text("IPTC digital source type {source} does not say AI-generated", source=source)
            if source
            else Text("no IPTC digital source type"),
        ),
        "c2pa": _c2pa_check(report.c2pa, report.c2pa_expired, allow_untrusted),
        "soft_binding": Check.of(
            bound,
            Text("the C2PA soft binding is the watermark")
            if bound
            else Text(
                "the C2PA soft binding ({binding}) is not the watermark ({payload})",
                binding=report.c2pa_soft_binding or Text("none"),
                payload=report.watermark or Text("none"),
            ),
        ),
    }
    if sha256_in_ledger is not None:  # else nothing to compare with: the report says no record was found
        checks["ledger"] = Check.of(
            sha256_in_ledger,
            Text("sha256 {sha256} recorded (ledger #{id})", sha256=report.sha256, id=record["id"])
            if sha256_in_ledger and record
            else Text("sha256 {sha256} recorded", sha256=report.sha256)
            if sha256_in_ledger
            else Text(
                "sha256 {sha256} is in no ledger row: the file changed since it was exported", sha256=report.sha256
            )
            if record
            else Text("no ledger record of this file"),
        )
    return checks


def _watermark_alone(payload: str | None, geometry: Text | str, not_found: Text) -> Check:
    if payload is None:
        return Check.of(False, not_found)
    return Check.of(
        True, Text("payload {payload}{geometry} (no record to look it up in)", payload=payload, geometry=geometry)
    )


def _c2pa_check(state: str, expired: bool, allow_untrusted: bool) -> Check:
    if expired:
        return Check.of(
            False,
            Text(
                "intact, but its signer's certificate has expired since, and without a time-stamp to show it was"
                " valid when it signed, C2PA readers reject it: time-stamp pictures as they are exported"
                " (VISUELS_TSA_URL), or with `visuels timestamp` before their certificate expires"
            ),
        )
    if state == "Trusted":
        return Check.of(True, Text("signed by a certificate the trust anchors know"))
    if state == "Valid":
        return Check.of(
            allow_untrusted,
            Text("intact, but signed by a certificate the trust anchors do not know (allowed)")
            if allow_untrusted
            else Text(
                "intact, but signed by a certificate the trust anchors do not know; --allow-untrusted accepts it"
            ),
        )
    if state == "Invalid":
        return Check.of(False, Text("the manifest does not match the file (altered or broken)"))
    return Check.of(False, Text("no C2PA manifest"))
