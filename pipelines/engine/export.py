"""Exporting one output: the marked file, its thumbnail, then its record, committed together.

Export marks every file last (``visuels.marking.mark``): invisible watermark (payload: the
first 64 bits of the job key), IPTC XMP, signed C2PA manifest (with the commune photo it was
made from, if any, and that photo's edge map saved for review), written under a temporary name.
Then one transaction of the database of record confirms that the job's claim is still this
run's and releases it (``visuels.engine.claims.settle``: the fence), moves the file into place, and
adds its ledger row and its outputs row. A run whose claim lapsed records nothing and leaves the
file to the run that took the job. A file moved into place but not yet recorded (a kill in
between) is simply rendered again by the next run, over the same path, and recorded once; a
file someone saved over an output (an edit made in place) is kept beside it, never overwritten.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict
from visuels._internal.atomic import keep_copy, staged, write_with
from visuels.engine import claims
from visuels.errors import ExportError
from visuels.inputs.images import PICTURE_MEDIA_TYPES
from visuels.inputs.photos import edge_map, fit_photo
from visuels.marking.c2pa_manifest import Ingredient, read_manifest_state
from visuels.marking.mark import MarkingContext, pixels_ingredient, thumbnail_jpeg, write_marked
from visuels.models.noise_mark import payload_for_key
from visuels.planning.jobs import KEY_PREFIX_LENGTH, RenderJob
from visuels.postprocess.compliance import Compliance
from visuels.record import ledger, manifest
from visuels.record.database import Database

THUMBNAIL_SIDE = 320
EDIT_KEPT_AS = "{stem}-edited{number}{suffix}"  # beside its output: "poster-1069fe734bdf-edited.png", then "-edited-2"


class ExportedFile(BaseModel):
    """What the record holds about one written output."""

    model_config = ConfigDict(frozen=True)

    job: RenderJob
    sha256: str
    size: int
    watermark: str
    thumbnail: str
    compliance: Compliance
    created: str
    ledger_id: int
    dtype: str = ""  # the precision the picture was rendered in, when the job asked for "auto"
    edit_kept_as: str | None = None  # where an edit saved over the output was kept, beside it (its name)


def output_path(output_root: Path, job: RenderJob) -> Path:
    path = (output_root / job.relative_path).resolve()
    if not path.is_relative_to(output_root.resolve()):  # slugs make this impossible; check anyway
        raise ExportError(job.relative_path, None, "output path escapes the output folder")
    return path


def watermark_id(job: RenderJob) -> int:
    """The watermark payload of a job's file: the first 64 bits of its key (its starting noise's is
    its generated picture's: the first 64 bits of its generation key)."""
    return payload_for_key(job.key)


def thumbnail_path(job: RenderJob) -> str:
    """Where the report's contact sheet finds the job's thumbnail, relative to the output root."""
    return f"{job.campaign}/thumbnails/{job.key[:KEY_PREFIX_LENGTH]}.jpg"


def edges_path(campaign: str, key: str) -> str:
    """Where the edge map of a job's photo is kept for review, relative to the output root."""
    return f"{campaign}/edges/{key[:KEY_PREFIX_LENGTH]}.png"


def photo_ingredient(job: RenderJob) -> Ingredient | None:
    if job.photo is None:
        return None
    path = Path(job.photo.path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExportError(path, None, "cannot read the commune photo: {strerror}", strerror=exc.strerror) from None
    return Ingredient(
        title=path.name, data=data, mime_type=PICTURE_MEDIA_TYPES[path.suffix.lower()], credit=job.photo.credit
    )


def key_visual_ingredient(job: RenderJob, key_visual: np.ndarray | None) -> Ingredient | None:
    """The key visual a declined format was made from, as a PNG ingredient (lossless: it is the
    generated picture itself, before any format, text or mark)."""
    if job.key_visual is None or key_visual is None:
        return None
    declined = job.key_visual
    how = "cropped" if declined.method == "crop" else "outpainted"
    return pixels_ingredient(
        key_visual,
        title=f"key visual {job.commune_name} {job.audience} {declined.format}.png",
        description=f"{how} from the {declined.format} key visual (job {declined.master_job[:KEY_PREFIX_LENGTH]})",
    )


def save_edge_map(job: RenderJob, output_root: Path) -> None:
    """The edge map the render saw (the photo at the generation size), as a PNG for reviewers."""
    if job.photo is None:
        return
    photo = fit_photo(Path(job.photo.path), job.generation_width, job.generation_height)
    edges = Image.fromarray(edge_map(photo, job.photo.canny_low, job.photo.canny_high))
    write_with(output_root / edges_path(job.campaign, job.key), lambda temporary: edges.save(temporary, format="PNG"))


def _ledger_entry(job: RenderJob) -> ledger.LedgerEntry:
    """The job's ledger row, before its file is written (hashes filled in as it is): its payloads
    (the pixel watermark's, the starting noise's), what made it, and its key visual's job."""
    return ledger.LedgerEntry(
        file=job.relative_path,
        sha256="",
        phash="",
        watermark=watermark_payload(job),
        job_key=job.key,
        model_hash=job.model_hash,
        lora_hash=job.lora_hash,
        charter_hash=job.charter_hash,
        prompt=job.prompt,
        seed=job.seed,
        width=job.width,
        height=job.height,
        key_visual=job.key_visual.master_job if job.key_visual else None,
        noise_mark=f"{payload_for_key(job.generation_key):016x}" if job.noise_mark else None,
    )


def export_picture(
    image: Image.Image,
    job: RenderJob,
    output_root: Path,
    compliance: Compliance,
    marking: MarkingContext,
    database: Database,
    claim_owner: str | None = None,
    dtype: str = "",
    key_visual: np.ndarray | None = None,
) -> ExportedFile:
    """Mark and write the final picture for ``job`` (PNG, JPEG or WebP) and its thumbnail, then record both.

    ``claim_owner``: the rendering call whose claim on the job must still hold for the file to be
    recorded (None: nobody claims it, as in a test that exports one picture). ``dtype``: what the
    rendering machine ran the model in, recorded with the file. ``key_visual``: the generated
    picture a declined format was made from (its C2PA ingredient; its job is the ledger parent).
    """
    target = output_path(output_root, job)
    if image.size != (job.width, job.height):
        raise ExportError(
            target,
            "size",
            "expected {width}x{height}, got {got_width}x{got_height}",
            width=job.width,
            height=job.height,
            got_width=image.size[0],
            got_height=image.size[1],
        )
    entry = _ledger_entry(job)
    save_edge_map(job, output_root)
    with staged(target) as file:
        alt_text = (job.language, job.alt_text) if job.alt_text else None
        marked = write_marked(
            image,
            file,
            job.file_type,
            entry,
            job.dpi,
            marking,
            photo=photo_ingredient(job),
            alt_text=alt_text,
            key_visual=key_visual_ingredient(job, key_visual),
        )
        thumbnail = thumbnail_jpeg(marked, THUMBNAIL_SIDE, marking.creator)
        write_with(output_root / thumbnail_path(job), lambda temporary: temporary.write_bytes(thumbnail))
        kept = keep_an_edit_aside(target, entry.watermark)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        manifest.stamp_as_exported(file.path, created)
        with database.transaction() as connection:
            if claim_owner is not None:
                claims.settle(connection, job.key, claim_owner)  # still ours: nobody else records this job
            file.publish()
            ledger_id = ledger.append(connection, marked.record.model_copy(update={"created": created}))
            exported = ExportedFile(
                job=job,
                sha256=marked.sha256,
                size=marked.size,
                watermark=marked.watermark,
                thumbnail=thumbnail_path(job),
                compliance=compliance,
                created=created,
                ledger_id=ledger_id,
                dtype=dtype,
                edit_kept_as=kept.name if kept else None,
            )
            manifest.add(connection, job.key, job.campaign, manifest_entry(exported))
    return exported


def saved_over(target: Path, watermark: str) -> bool:
    """Whether a file is at ``target`` that is not the export of the job whose watermark payload is
    ``watermark`` (a valid manifest made for it): someone's work saved over the output."""
    if not target.is_file():
        return False
    made = read_manifest_state(target, None)
    intact = made.state in ("Valid", "Trusted") or made.expired_only  # a year on, its certificate may have expired
    return not (intact and made.edited_from is None and made.soft_binding == watermark)


def watermark_payload(job: RenderJob) -> str:
    """``watermark_id`` as the ledger and the manifest write it: 16 hexadecimal digits."""
    return f"{watermark_id(job):016x}"


def keep_an_edit_aside(target: Path, watermark: str) -> Path | None:
    """Before a job's file replaces what is at ``target``: a file there that is not the job's own
    export (a valid manifest, made for its ``watermark`` payload) was saved over the output by
    someone (an edit in Photoshop, saved in place). Its work is never lost: it is kept beside,
    under ``EDIT_KEPT_AS``, once, and the output is made again. Returns where it was kept.

    A file of this job's own, written but not recorded (a run killed in between), is replaced."""
    if not saved_over(target, watermark):
        return None

    def named(number: int) -> Path:
        return target.with_name(
            EDIT_KEPT_AS.format(stem=target.stem, number=f"-{number}" if number > 1 else "", suffix=target.suffix)
        )

    try:
        aside = keep_copy(target, named)
    except FileExistsError:
        raise ExportError(
            target, None, "changed since it was rendered, and 999 edits are kept beside it already"
        ) from None
    return aside


def manifest_entry(exported: ExportedFile) -> dict:
    """The outputs row of an exported file, as ``manifest.json`` lists it."""
    return {
        "file": exported.job.relative_path,
        "sha256": exported.sha256,
        "size": exported.size,
        "watermark": exported.watermark,
        "created": exported.created,
        "thumbnail": exported.thumbnail,
        "ledger_id": exported.ledger_id,
        "compliance": exported.compliance.model_dump(),
        # What shaped the picture, and the dtype "auto" became on the machine that rendered it.
        "inputs": exported.job.model_dump(exclude={"key", "relative_path"})
        | ({"dtype": exported.dtype} if exported.dtype else {}),
    }
