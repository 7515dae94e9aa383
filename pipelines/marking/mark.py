"""Marking, the last step of export: watermark, XMP, signed C2PA manifest, and the ledger row to record.

``write_marked`` is the only function that writes an output picture: it fills a staged file
(``visuels._internal.atomic.staged``), which its caller moves into place once the picture may be
recorded (export: inside the transaction that records it, once its claim is confirmed). Nothing
else writes pictures, so no file leaves the pipeline unmarked. It returns the file's ledger row,
which export commits with the file's outputs row.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from visuels._internal.atomic import StagedFile
from visuels.errors import ExportError
from visuels.inputs.images import as_rgb
from visuels.marking import iscc, watermark
from visuels.marking.c2pa_manifest import Ingredient, Provenance, sign_asset
from visuels.marking.keys import SigningFiles
from visuels.marking.phash import perceptual_hash
from visuels.marking.png import encode_png
from visuels.marking.watermark_keys import WatermarkKey
from visuels.marking.xmp import XMP_PNG_KEY, DigitalSourceType, xmp_packet
from visuels.postprocess.resize import reduced
from visuels.record import ledger

log = logging.getLogger(__name__)

SOFTWARE = "visuels"


@dataclass(frozen=True)
class MarkingContext:
    """Who and what made the pictures, and where the signing keys are."""

    creator: str
    model: str
    signing: SigningFiles
    run_id: str | None = None
    disclose_prompt: bool = False  # the charter's choice: each picture's prompt in its IPTC metadata
    model_licence: str | None = None  # the model's licence id, recorded in the ledger and the manifest
    licence_override: str | None = None  # the campaign's reason to use a model whose licence refuses publication


@dataclass(frozen=True)
class MarkedFile:
    sha256: str
    size: int
    watermark: str
    phash: str
    record: ledger.LedgerEntry  # the file's ledger row, for export to commit with its outputs row
    pixels: np.ndarray  # as stored in the file (JPEG and WebP are lossy)
    source_type: DigitalSourceType


MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
LOSSY_QUALITY = 92  # JPEG and WebP: the watermark survives far lower (see benchmarks/RESULTS.md)
THUMBNAIL_QUALITY = 80  # the report's contact sheet: small files
# libwebp's effort, 0-6 (Pillow's default 4): 1 takes half the time or less for the same PSNR and
# at most a tenth more bytes (measured on 1080² pictures, benchmarks/RESULTS.md "CPU stage").
WEBP_METHOD = 1


def encode(pixels: np.ndarray, file_type: str, dpi: int, xmp: str) -> bytes:
    """(h, w, 3) uint8 pixels as PNG, JPEG or WebP bytes, with its XMP packet."""
    if file_type == "png":
        return encode_png(pixels, dpi, {XMP_PNG_KEY: xmp})  # a tenth of Pillow's time
    image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    if file_type == "jpeg":
        image.save(buffer, format="JPEG", quality=LOSSY_QUALITY, dpi=(dpi, dpi), xmp=xmp.encode("utf-8"))
    else:
        image.save(buffer, format="WEBP", quality=LOSSY_QUALITY, method=WEBP_METHOD, xmp=xmp.encode("utf-8"))
    return buffer.getvalue()


class EncodedFile:
    """What a file of ``file_type`` holds of marked pixels, as ``embed_readable`` reads the mark
    back: lossy formats decoded again (JPEG at the exports' quality loses some busy pictures'
    marks that read back on their pixels). Keeps the last encoding: the file's bytes."""

    def __init__(self, file_type: str, dpi: int, xmp: str) -> None:
        self.file_type, self.dpi, self.xmp = file_type, dpi, xmp
        self.encoded, self.decoded = b"", np.empty((0, 0, 3), dtype=np.uint8)

    def __call__(self, marked: np.ndarray) -> np.ndarray:
        self.encoded = encode(marked, self.file_type, self.dpi, self.xmp)
        if self.file_type == "png":
            self.decoded = marked  # lossless, to the byte
        else:
            with Image.open(io.BytesIO(self.encoded)) as written:
                self.decoded = np.asarray(written.convert("RGB"))
        return self.decoded


def _watermarked(image: Image.Image, payload: str, key: int, stored: EncodedFile, name: Path) -> np.ndarray:
    """The pixels with the invisible watermark of ``payload`` (hex), as strong as it takes to read
    back from ``stored``'s encoding (which it leaves encoded); what it took is logged."""
    pixels, strength = watermark.embed_readable(np.asarray(as_rgb(image)), int(payload, 16), key, stored)
    if strength is None:  # the other marks (XMP, C2PA, the label, the starting noise) still say it
        log.warning("%s: its invisible watermark does not read back even at its strongest", name)
    elif strength != watermark.STRENGTHS[0]:
        overall, textured = strength
        on_texture = f" ({overall + textured:.1f} where the picture is busy)" if textured else ""
        log.info("%s: invisible watermark %.1f times the usual strength%s, to read back", name, overall, on_texture)
    return pixels


def write_marked(
    image: Image.Image,
    target: StagedFile,
    file_type: str,
    entry: ledger.LedgerEntry,
    dpi: int,
    context: MarkingContext,
    parent: Ingredient | None = None,
    photo: Ingredient | None = None,
    alt_text: tuple[str, str] | None = None,
    key_visual: Ingredient | None = None,
) -> MarkedFile:
    """Watermark ``image`` with ``entry.watermark``, encode with XMP, sign, write into ``target``
    (a staged file: its caller publishes it).

    ``parent``: the picture this one was edited from (a retouch, outside edits). ``photo``: the
    real photo the model started from. Either way the file is a composite with generated parts:
    its manifest records the parent's edit or the photo as the model's input, with its credit.
    ``alt_text``: (language, text) for screen readers, written to the XMP. ``key_visual``: the
    generated picture this format was declined from (generated too: the file stays generated).
    """
    composite = parent is not None or photo is not None
    source_type = DigitalSourceType.composite if composite else DigitalSourceType.generated
    xmp = xmp_packet(
        source_type,
        context.creator,
        SOFTWARE,
        photo.credit if photo else None,
        alt_text,
        ai_system=(context.model, entry.model_hash[:12]),
        prompt=entry.prompt if context.disclose_prompt else None,
    )
    key = context.signing.watermark
    stored = EncodedFile(file_type, dpi, xmp)
    pixels = _watermarked(image, entry.watermark, key.value, stored, target.target)
    provenance = Provenance(
        title=target.target.name,
        source_type=source_type,
        model=context.model,
        model_hash=entry.model_hash,
        lora_hash=entry.lora_hash,
        watermark_id=entry.watermark,
        watermark_key_id=key.id,
        image_code=iscc.image_code(pixels),  # from the pixels at hand: no decoding back
        parent=parent,
        photo=photo,
        key_visual=key_visual,
        model_licence=context.model_licence,
        licence_override=context.licence_override,
    )
    signed = sign_asset(stored.encoded, MIME_TYPES[file_type], provenance, context.signing)  # last
    try:
        target.path.write_bytes(signed)
    except OSError as exc:
        raise ExportError(target.target, None, "cannot write it: {reason}", reason=exc.strerror or str(exc)) from None
    digest = hashlib.sha256(signed).hexdigest()
    pixels = stored.decoded  # lossy: hash what readers will decode, not what was encoded
    phash = perceptual_hash(pixels)
    record = entry.model_copy(
        update={
            "sha256": digest,
            "phash": phash,
            "run_id": context.run_id,
            "model_licence": context.model_licence,
            "licence_override": context.licence_override,
        }
    )
    return MarkedFile(
        sha256=digest,
        size=len(signed),
        watermark=entry.watermark,
        phash=phash,
        record=record,
        pixels=pixels,
        source_type=source_type,
    )


def thumbnail_jpeg(marked: MarkedFile, side: int, creator: str) -> bytes:
    """The report's thumbnail of a marked file, at most ``side`` pixels: its pixels reduced (its
    watermark stays readable) and its XMP saying AI-made as the file's does, so a thumbnail taken
    from the report is no unmarked copy."""
    buffer = io.BytesIO()
    xmp = xmp_packet(marked.source_type, creator, SOFTWARE)
    thumbnail = Image.fromarray(reduced(marked.pixels, side))
    thumbnail.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY, xmp=xmp.encode("utf-8"))
    return buffer.getvalue()


def pixels_ingredient(pixels: np.ndarray, title: str, description: str) -> Ingredient:
    """A generated picture as a C2PA ingredient (lossless PNG bytes, in memory: the manifest keeps
    its hash, never the picture itself)."""
    return Ingredient(title=title, data=encode_png(pixels), mime_type="image/png", description=description)


def preview_jpeg(image: Image.Image, watermark_id: str, creator: str, side: int, key: WatermarkKey) -> bytes:
    """A studio preview of a variant, at most ``side`` pixels: watermarked and tagged, never written.

    Its watermark is the original's id, so a preview saved from the browser still leads to the
    original's ledger row; only a kept variant gets its own payload, XMP and signed manifest.
    """
    preview = image.convert("RGB")
    preview.thumbnail((side, side), Image.Resampling.LANCZOS)
    stored = EncodedFile("jpeg", 72, xmp_packet(DigitalSourceType.composite, creator, SOFTWARE))
    watermark.embed_readable(np.asarray(preview), int(watermark_id, 16), key.value, stored)
    return stored.encoded
