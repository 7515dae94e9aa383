"""Writing outputs: one PNG per job, atomically, and the campaign's manifest.json.

Export marks every file last (``pipelines.marking.mark``): invisible watermark (payload: the
first 64 bits of the job key), IPTC XMP, signed C2PA manifest, ledger row.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image
from pydantic import BaseModel, ConfigDict

from pipelines.atomic import write_text_atomic, write_with
from pipelines.compliance import Compliance
from pipelines.errors import ExportError
from pipelines.jobs import KEY_PREFIX_LENGTH, RenderJob
from pipelines.marking.ledger import LedgerEntry
from pipelines.marking.mark import MarkingContext, write_marked

MANIFEST_NAME = "manifest.json"
THUMBNAIL_SIDE = 320


class ExportedFile(BaseModel):
    """What the manifest records about one written output."""

    model_config = ConfigDict(frozen=True)

    job: RenderJob
    sha256: str
    size: int
    watermark: str
    thumbnail: str
    compliance: Compliance
    created: str


def output_path(output_root: Path, job: RenderJob) -> Path:
    path = (output_root / job.relative_path).resolve()
    if not path.is_relative_to(output_root.resolve()):  # slugs make this impossible; check anyway
        raise ExportError(job.relative_path, None, "output path escapes the output folder")
    return path


def watermark_id(job: RenderJob) -> int:
    """The watermark payload of a job's file: the first 64 bits of its key."""
    return int(job.key[:16], 16)


def thumbnail_path(job: RenderJob) -> str:
    """Where the report's contact sheet finds the job's thumbnail, relative to the output root."""
    return f"{job.campaign}/thumbnails/{job.key[:KEY_PREFIX_LENGTH]}.jpg"


def export_png(
    image: Image.Image, job: RenderJob, output_root: Path, compliance: Compliance, marking: MarkingContext
) -> ExportedFile:
    """Mark and write the final picture for ``job``, and its thumbnail; never a partial file."""
    target = output_path(output_root, job)
    if image.size != (job.width, job.height):
        raise ExportError(target, "size", f"expected {job.width}x{job.height}, got {image.size[0]}x{image.size[1]}")
    entry = LedgerEntry(
        file=job.relative_path,
        sha256="",
        phash="",
        watermark=f"{watermark_id(job):016x}",
        job_key=job.key,
        model_hash=job.model_hash,
        lora_hash=job.lora_hash,
        charter_hash=job.charter_hash,
        prompt=job.prompt,
        seed=job.seed,
        width=job.width,
        height=job.height,
    )
    marked = write_marked(image, target, job.file_type, entry, job.dpi, marking)
    thumbnail = Image.fromarray(marked.pixels)
    thumbnail.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    write_with(
        output_root / thumbnail_path(job), lambda temporary: thumbnail.save(temporary, format="JPEG", quality=80)
    )
    return ExportedFile(
        job=job,
        sha256=marked.sha256,
        size=marked.size,
        watermark=marked.watermark,
        thumbnail=thumbnail_path(job),
        compliance=compliance,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def manifest_path(output_root: Path, campaign_slug: str) -> Path:
    return output_root / campaign_slug / MANIFEST_NAME


def read_manifest(output_root: Path, campaign_slug: str) -> dict[str, dict]:
    """Entries by job key; an absent or unreadable manifest reads as empty."""
    try:
        data = json.loads(manifest_path(output_root, campaign_slug).read_text(encoding="utf-8"))
        return dict(data.get("files", {}))
    except (OSError, ValueError, AttributeError):
        return {}


@contextmanager
def _manifest_lock(output_root: Path, campaign_slug: str) -> Iterator[None]:
    """One writer at a time: shards of a campaign, on several workers, finish concurrently."""
    lock_file = manifest_path(output_root, campaign_slug).with_suffix(".lock")
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_manifest(output_root: Path, campaign_slug: str, campaign_name: str, exported: Iterable[ExportedFile]) -> Path:
    """Merge new entries into the campaign's manifest (key -> inputs, file, hashes)."""
    with _manifest_lock(output_root, campaign_slug):
        return _merge_manifest(output_root, campaign_slug, campaign_name, exported)


def _merge_manifest(
    output_root: Path, campaign_slug: str, campaign_name: str, exported: Iterable[ExportedFile]
) -> Path:
    entries = read_manifest(output_root, campaign_slug)
    for item in exported:
        entries[item.job.key] = {
            "file": item.job.relative_path,
            "sha256": item.sha256,
            "size": item.size,
            "watermark": item.watermark,
            "created": item.created,
            "thumbnail": item.thumbnail,
            "compliance": item.compliance.model_dump(),
            "inputs": item.job.model_dump(exclude={"key", "relative_path"}),
        }
    target = manifest_path(output_root, campaign_slug)
    document = {"campaign": campaign_name, "files": dict(sorted(entries.items()))}
    write_text_atomic(target, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return target


def is_done(job: RenderJob, output_root: Path, manifest: dict[str, dict]) -> bool:
    """A job is done when the manifest knows its key and its file is on disk, whole.

    The size recorded at export catches truncated or replaced files without hashing thousands
    of pictures on every nightly run.
    """
    entry = manifest.get(job.key)
    if entry is None:
        return False
    try:
        return output_path(output_root, job).stat().st_size == entry.get("size")
    except FileNotFoundError:
        return False
