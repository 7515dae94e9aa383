"""``visuels detect``: whether a picture is this deployment's AI picture, for anyone, from the
file alone (no database of record, no GPU, no model: torch is never imported).

Each mark is read and said with what it rests on: the C2PA manifest (valid, trusted by the
deployment's anchors, its signer and time-stamp), the XMP digital source type, the watermark
(payload, how it was found), whether the C2PA soft binding names that watermark, and the visible
label. The verdict rests on the marks a forger cannot copy without the deployment's secrets: a
manifest its anchors trust, or the watermark read with its key (Code of Practice, Commitment 2:
the result says which). A result is signed by the detector's own key (``keys.DETECTOR_KEY``),
with the file's sha256, the detector's name and version and the time, so it can be kept and
checked later (``check_result``): anything changed in it breaks the signature.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from PIL import Image
from pydantic import BaseModel, PrivateAttr, ValidationError
from visuels._internal.json_text import read_json
from visuels.errors import Text, VisuelsError
from visuels.inputs.charter import Charter
from visuels.marking import iscc
from visuels.marking.watermark_keys import WatermarkKey
from visuels.marking.xmp import DigitalSourceType
from visuels.review.verify import read_marks

DETECTOR = "visuels detect"
MARK_NAMES = {  # each mark as the public calls it
    "c2pa": Text("content credential (C2PA)"),
    "watermark": Text("invisible watermark"),
    "soft_binding": Text("watermark named by the credential"),
    "iscc": Text("ISCC image code"),
    "xmp": Text("metadata (IPTC)"),
    "label": Text("visible label"),
    "noise": Text("starting-noise mark"),
}
RESULT_VERSION = 1  # of the result's layout; a reader refuses one it does not know


def detector_version() -> str:
    try:
        return version("visuels")
    except PackageNotFoundError:  # a checkout run without an install
        return "unknown"


class Mark(BaseModel):
    """One mark: whether it is there, and what that rests on (in English in a result; ``said``
    gives the words in the reader's language)."""

    found: bool
    basis: str
    _text: Text | None = PrivateAttr(default=None)

    @classmethod
    def of(cls, found: bool, text: Text) -> Mark:
        mark = cls(found=found, basis=str(text))
        mark._text = text
        return mark

    def said(self, words: Callable[..., str]) -> str:
        return self._text.said(words) if self._text else self.basis


class Detection(BaseModel):
    """What was found in one file, and the verdict. ``relied_on``: the marks the verdict rests on."""

    result_version: int = RESULT_VERSION
    file: str
    sha256: str
    detector: str = DETECTOR
    detector_version: str
    checked_at: str  # UTC, ISO 8601
    marks: dict[str, Mark]
    verdict: Literal["marked", "unmarked"]
    relied_on: list[str]


class DetectionError(VisuelsError):
    """A detection result that cannot be read or checked."""


def detect_file(
    path: Path,
    charter: Charter,
    trust_anchors: Path | None,
    keys: list[WatermarkKey] | None = None,
    deep: Callable[[Image.Image, str | None], Mark] | None = None,
) -> Detection:
    """Read every mark of ``path`` (the watermark with ``keys``, default: every key the deployment
    holds); an unreadable file raises :class:`ImageInputError`. ``deep``: also read the starting-
    noise mark by inverting a model (``visuels.review.deep_detect``: the only part that needs one)."""
    read = read_marks(path, charter, trust_anchors, keys)
    found, manifest = read.found, read.manifest
    payload, source_type, seen = read.payload, read.source_type, read.label_seen
    generated = {kind.value for kind in DigitalSourceType}
    geometry = found.geometry()
    how = Text(" (found {how})", how=geometry) if geometry else ""
    signer = Text(", signed by {signer}", signer=manifest.signer) if manifest.signer else ""
    stamped = Text(", time-stamped {time}", time=manifest.signed_at) if manifest.signed_at else Text(", no time-stamp")
    c2pa_basis = {
        "Trusted": Text(
            "valid, trusted by this deployment's anchors{signer}{stamped}",
            signer=signer,
            stamped=stamped,
        ),
        "Valid": Text(
            "intact, but signed by a certificate this deployment's trust anchors do not know{signer}", signer=signer
        ),
        "Invalid": Text(
            "intact, but signed by a certificate that has expired since, with no time-stamp to show it was valid"
            " then{signer}",
            signer=signer,
        )
        if manifest.expired_only
        else Text("present, but it does not match the file (altered or broken)"),
    }.get(manifest.state, Text("no C2PA manifest"))
    marks = {
        "c2pa": Mark.of(manifest.state == "Trusted", c2pa_basis),
        "watermark": _watermark_mark(payload, read.key, how),
        "soft_binding": _soft_binding_mark(manifest.soft_binding, payload),
        "iscc": _iscc_mark(read.picture, manifest.image_code),
        "xmp": Mark.of(
            source_type in generated,
            Text("IPTC digital source type {source}", source=source_type)
            if source_type
            else Text("no IPTC digital source type"),
        ),
        "label": _label_mark(seen, shown=found.within is not None),
    }
    if deep is not None:
        marks["noise"] = deep(read.picture, payload if read.key is not None and not read.key.demo else None)
    # Only what needs the deployment's secrets to make: its signing key, its watermark key (the
    # public demo key is no secret: anyone can write its mark).
    secret_mark = read.key is not None and not read.key.demo
    relied_on = [name for name in ("c2pa", "watermark") if marks[name].found and (name == "c2pa" or secret_mark)]
    if "noise" in marks and marks["noise"].found:  # read with a key of the deployment's (deep_detect)
        relied_on.append("noise")
    return Detection(
        file=str(path),
        sha256=read.sha256,
        detector_version=detector_version(),
        checked_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        marks=marks,
        verdict="marked" if relied_on else "unmarked",
        relied_on=relied_on,
    )


def _label_mark(seen: bool, shown: bool) -> Mark:
    """The visible label: in a corner of the picture, or, in a screenshot (``shown``: the picture
    found inside the upload), anywhere on the picture shown."""
    if shown:
        seen_text = Text("the charter's AI label on the picture shown")
        return Mark.of(seen, seen_text if seen else Text("no AI label on the picture shown"))
    return Mark.of(seen, Text("the charter's AI label in a corner") if seen else Text("no AI label in a corner"))


def _watermark_mark(payload: str | None, key: WatermarkKey | None, how: Text | str) -> Mark:
    if payload is None or key is None:
        return Mark.of(False, Text("no watermark of this deployment's keys"))
    if key.demo:
        return Mark.of(
            True,
            Text(
                "payload {payload}, read with the public demo key{how}: anyone can write it, it proves nothing",
                payload=payload,
                how=how,
            ),
        )
    said = Text("payload {payload}, read with this deployment's key {key}{how}", payload=payload, key=key.id, how=how)
    return Mark.of(True, said)


def _soft_binding_mark(binding: str | None, payload: str | None) -> Mark:
    """Whether the watermark the manifest names (its soft binding) is the one read in the pixels."""
    if binding is not None and binding == payload:
        return Mark.of(True, Text("the manifest's soft binding is the watermark read"))
    if binding is None and payload is None:
        return Mark.of(False, Text("neither a soft binding nor a watermark to compare"))
    if binding is None:  # a copy that lost its manifest (a screenshot, a social network's)
        return Mark.of(False, Text("no manifest names a watermark; the one read is {payload}", payload=payload))
    if payload is None:
        return Mark.of(
            False, Text("the manifest names watermark {binding}, which the pixels do not carry", binding=binding)
        )
    return Mark.of(
        False,
        Text(
            "the manifest's soft binding ({binding}) is not the watermark read ({payload})",
            binding=binding,
            payload=payload,
        ),
    )


def _iscc_mark(picture: Image.Image, named: str | None) -> Mark:
    """Whether the pixels are those the manifest's ISCC image code names (re-encoded or resized
    copies stay within ``iscc.MATCH_BITS``; a crop or an edit does not)."""
    if named is None:
        return Mark.of(False, Text("no ISCC soft binding in a manifest"))
    differ = iscc.distance(iscc.image_code(picture), named)
    if differ <= iscc.MATCH_BITS:
        return Mark.of(True, Text("the pixels are those the manifest's ISCC code {code} names", code=named))
    return Mark.of(
        False,
        Text("the pixels differ from the manifest's ISCC code {code} by {bits} bits of 64", code=named, bits=differ),
    )


def verdict_line(detection: Detection) -> Text:
    if detection.verdict == "marked":
        named = [MARK_NAMES[name] for name in detection.relied_on]  # one to three
        marks = named[-1]
        if len(named) > 1:
            marks = Text("{one} and {other}", one=named[-2], other=named[-1])
        if len(named) > 2:
            marks = Text("{first}, {rest}", first=named[0], rest=marks)
        return Text("{file}: AI picture of this deployment (relied on: {marks})", file=detection.file, marks=marks)
    return Text("{file}: no mark of this deployment", file=detection.file)


def _canonical(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def signed_result(detections: list[Detection], key: ec.EllipticCurvePrivateKey) -> dict:
    """The detections as a document signed by ``key`` (ECDSA P-256, SHA-256, over the canonical
    JSON of everything but the signature), carrying its public key and that key's id."""
    public = key.public_key()
    document = {
        "detections": [detection.model_dump() for detection in detections],
        "public_key": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii"),
        "key_id": _key_id(public),
    }
    signature = key.sign(_canonical(document), ec.ECDSA(hashes.SHA256()))
    return {**document, "signature": base64.b64encode(signature).decode("ascii")}


def check_result(path: Path, known: ec.EllipticCurvePublicKey | None) -> tuple[list[Detection], bool]:
    """The detections of a signed result, once its signature is checked; whether it was signed by
    ``known`` (this deployment's detector key). A changed or unsigned result raises
    :class:`DetectionError`."""
    try:
        document = read_json(path)
        signature = base64.b64decode(document.pop("signature"), validate=True)
        public = serialization.load_pem_public_key(document["public_key"].encode("ascii"))
    except FileNotFoundError:
        raise DetectionError(path, None, "file not found") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise DetectionError(path, None, "not a signed detection result") from None
    if not isinstance(public, ec.EllipticCurvePublicKey) or document.get("key_id") != _key_id(public):
        raise DetectionError(path, "public_key", "not a detector's key")
    try:
        public.verify(signature, _canonical(document), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise DetectionError(path, "signature", "the signature does not match: the result was changed") from None
    try:
        detections = [Detection.model_validate(detection) for detection in document.get("detections", [])]
    except ValidationError:
        raise DetectionError(path, "detections", "not a detection result this detector reads") from None
    if any(detection.result_version != RESULT_VERSION for detection in detections):
        raise DetectionError(path, "result_version", "a result version this detector does not read")
    return detections, known is not None and _key_id(known) == document["key_id"]
