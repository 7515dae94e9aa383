"""Files made from an output: retouched in the studio, or edited in another program, then marked again.

Opening an output in an editor and saving it strips its C2PA manifest, often its XMP, and may
weaken its watermark. A derivative is therefore never published as it comes: it is checked
against the charter (what changed since the original is reported; a label the edit hid or
touched is drawn again in its place, nothing else is repainted),
watermarked with a payload of its own, tagged as a composite with generated parts in XMP, and
signed last with a C2PA manifest whose action is ``c2pa.edited`` and whose parent ingredient is
the original file (its manifest included). Its ledger row points at the original's row.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image
from pydantic import BaseModel
from visuels._internal.atomic import remove_leftovers_of, staged
from visuels._internal.hashing import sha256_json
from visuels.config import default_charter
from visuels.engine.export import EDIT_KEPT_AS
from visuels.errors import VisuelsError
from visuels.inputs.charter import Charter, load_charter
from visuels.inputs.images import ImageInputError, read_file, read_picture
from visuels.inputs.logo_fit import logo_geometry
from visuels.inputs.templates import Template
from visuels.marking import watermark
from visuels.marking.c2pa_manifest import Ingredient
from visuels.marking.keys import SigningFiles, keys_dir
from visuels.marking.mark import MarkingContext, write_marked
from visuels.marking.phash import perceptual_hash
from visuels.marking.watermark_keys import find_mark, known_keys
from visuels.postprocess import findings
from visuels.postprocess.layout import Box, box_in_corner, margin
from visuels.postprocess.palette import conformity
from visuels.postprocess.relabel import label_place, relabel
from visuels.record import ledger, model_sources
from visuels.record.database import Database, outputs_table
from visuels.review.verify import find_record, label_seen

log = logging.getLogger(__name__)
CHANGE_THRESHOLD = 16  # a pixel changed when a channel moved by more than this, both pictures smoothed
# Both pictures are smoothed before they are compared: a lossy re-export (JPEG, WebP) rings around
# every edge by more than CHANGE_THRESHOLD, pixel by pixel, but not on average over its 8x8 blocks;
# a painted area moves the average too.
COMPARE_SIGMA_PX = 2.0
TOUCHED_SHARE = 0.02  # an overlay is touched when this share of its pixels changed
FILE_TYPES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}


@dataclass(frozen=True)
class Original:
    """An exported file and what the record knows about it."""

    path: Path
    data: bytes
    row: dict  # its ledger row
    inputs: dict | None  # the render job that made it, when the outputs table holds it
    compliance: dict | None


@dataclass(frozen=True)
class Edit:
    """How a derivative was made: by hand elsewhere, or by the studio's inpainting."""

    description: str  # recorded as the ledger row's prompt
    model_hash: str | None = None  # the retouch's model, when a model made it
    lora_hash: str | None = None
    seed: int | None = None
    model_licence: str | None = None  # the retouch model's licence id, where known


class EditCheck(BaseModel):
    """What changed between the original and its derivative, against the charter's rules."""

    changed_share: float
    changed_box: tuple[int, int, int, int] | None
    size_changed: bool
    label_seen: bool
    label_touched: bool
    logo_touched: bool
    palette_before: float
    palette_after: float
    passed: bool
    reasons: list[str]
    notes: list[str] = []  # what was put right before marking (the label drawn again)


class OriginalRef(BaseModel):
    file: str
    job_key: str
    sha256: str
    ledger_id: int


class Derivative(BaseModel):
    """A marked, recorded derivative."""

    file: str
    sha256: str
    watermark: str
    job_key: str
    ledger_id: int
    original: OriginalRef
    check: EditCheck
    already_done: bool = False


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _outputs_row(database: Database, job_key: str) -> dict | None:
    with database.reading() as connection:
        found = connection.execute(outputs_table.select().where(outputs_table.c.job_key == job_key)).first()
    return dict(found._mapping) if found else None


def outputs_inputs(database: Database, job_key: str) -> dict | None:
    """The render job a job key's outputs row records (what shaped its pixels), if there is one."""
    row = _outputs_row(database, job_key)
    return json.loads(row["inputs"]) if row else None


def _recorded_file(row: dict, output_root: Path | None) -> Path | None:
    """Where the file a ledger row records is, if it is still there with the same bytes."""
    path = ledger.recorded_place(row, output_root)
    if path.is_file() and _sha256(path.read_bytes()) == row["sha256"]:
        return path
    return None


def find_original(database: Database, path: Path, output_root: Path | None, field: str = "original") -> Original:
    """The record of an exported file: by its exact bytes, else by its watermark or perceptual hash.

    Found by its marks (``path`` was re-saved or edited), the original's own file is read from
    where the record says it is: that file, with its manifest, is the derivative's ingredient.
    """
    data = read_file(path, field)
    row = ledger.by_sha256(database, _sha256(data))
    if row is None:
        pixels = np.asarray(read_picture(path, field))
        found, _ = find_mark(pixels, known_keys(keys_dir()))
        mark = f"{found.payload:016x}" if found.payload is not None else None
        row, _ = find_record(database, watermark=mark, phash=perceptual_hash(pixels))
        if row is None:
            raise ImageInputError(
                path, field, "no ledger record: not a file exported by visuels (or recorded in another database)"
            )
        recorded = _recorded_file(row, output_root)
        if recorded is None and path.resolve() == ledger.recorded_place(row, output_root).resolve():
            raise ImageInputError(
                path,
                field,
                "the output itself, saved over since it was exported (ledger #{row}), so its original is gone:"
                " `visuels render` keeps this edit beside it as {kept} and makes the output again; finalize that",
                row=row["id"],
                kept=EDIT_KEPT_AS.format(stem=path.stem, number="", suffix=path.suffix),
            )
        if recorded is None:
            raise ImageInputError(
                path,
                field,
                "comes from {file} (ledger #{row}), which is not here: give it with --from",
                file=row["file"],
                row=row["id"],
            )
        path, data = recorded, recorded.read_bytes()
    outputs = _outputs_row(database, row["job_key"])
    return Original(
        path=path,
        data=data,
        row=row,
        inputs=json.loads(outputs["inputs"]) if outputs else None,
        compliance=json.loads(outputs["compliance"]) if outputs else None,
    )


def original_charter(database: Database, original: Original) -> Charter:
    """The charter an output was made with: the file its render recorded under its hash, wherever it
    is still there (edited since: the region's charter still, which the edit check says differs);
    else the deployment's (``VISUELS_CHARTER``, else the sample's)."""
    recorded = model_sources.charter_file_for(database, original.row["charter_hash"])
    if recorded is not None:
        try:
            return _charter_as_it_is(recorded, recorded.stat().st_mtime_ns)
        except (OSError, VisuelsError):  # moved or broken since: the deployment's says what it can
            log.info("the charter %s that made %s cannot be read now", recorded, original.path)
    return load_charter(default_charter())


@lru_cache(maxsize=4)
def _charter_as_it_is(charter_file: Path, modified_ns: int) -> Charter:
    """A charter read once while its file is unchanged: finalizing a folder of edits, or each of a
    studio's retouches, read it once for each (0.1 s)."""
    return load_charter(charter_file)


def _label_language(charter: Charter, original: Original) -> str:
    language = (original.inputs or {}).get("language", "fr")
    return language if language in charter.spec.ai_label.text else "fr"


def _template(charter: Charter, original: Original) -> Template | None:
    """The template the original was laid out in (None: the built-in layout)."""
    inputs = original.inputs or {}
    return charter.template(inputs.get("layout"), inputs.get("format", ""))


def _overlay_boxes(charter: Charter, original: Original, size: tuple[int, int]) -> dict[str, Box]:
    """Where the original's AI label and logo are: the same geometry post-processing used."""
    label = label_place(size, charter, _label_language(charter, original), _template(charter, original))
    boxes = {"label": label.box}
    corner = (original.compliance or {}).get("logo_corner")
    if corner:
        logo_width, logo_height, clear = logo_geometry(charter, *size)
        inset = max(margin(*size), clear)
        boxes["logo"] = box_in_corner(corner, (logo_width, logo_height), size, inset)
    return boxes


def label_box(charter: Charter, original: Original, size: tuple[int, int]) -> Box:
    """Where the original's AI label stands: the studio locks it while a retouch is painted."""
    return _overlay_boxes(charter, original, size)["label"]


def _touched(changed: np.ndarray, box: Box) -> bool:
    region = changed[max(0, box.top) : box.bottom, max(0, box.left) : box.right]
    return region.size > 0 and float(region.mean()) > TOUCHED_SHARE


def changed_pixels(original: Image.Image, edited: Image.Image) -> np.ndarray:
    """Where the edited picture differs from the original (compared at the original's size)."""
    compared = edited.resize(original.size, Image.Resampling.LANCZOS) if edited.size != original.size else edited
    smooth = [
        cv2.GaussianBlur(np.asarray(picture.convert("RGB"), dtype=np.float32), (0, 0), COMPARE_SIGMA_PX)
        for picture in (compared, original)
    ]
    return np.abs(smooth[0] - smooth[1]).max(axis=2) > CHANGE_THRESHOLD


def check_edit(original: Image.Image, edited: Image.Image, charter: Charter, record: Original) -> EditCheck:
    """Compare the derivative with its original and the charter; report (``notes``: the label to
    draw again, which ``mark_derivative`` does)."""
    reasons = []
    size_changed = edited.size != original.size
    if size_changed:
        reasons.append(
            findings.EDIT_SIZE_CHANGED.format(
                before=f"{original.width}x{original.height}", after=f"{edited.width}x{edited.height}"
            )
        )
    changed = changed_pixels(original, edited)
    rows, columns = np.nonzero(changed)
    changed_box = (
        (int(columns.min()), int(rows.min()), int(columns.max()) + 1, int(rows.max()) + 1) if rows.size else None
    )
    boxes = _overlay_boxes(charter, record, original.size)
    label_touched = _touched(changed, boxes["label"])
    logo_touched = "logo" in boxes and _touched(changed, boxes["logo"])
    seen = label_seen(np.asarray(edited), charter)
    notes = []
    if not seen or label_touched:
        # Drawn again in its place before the file is marked (``relabelled``): said, not a fault.
        notes.append(findings.EDIT_LABEL_HIDDEN if not seen else findings.EDIT_LABEL_TOUCHED)
    if logo_touched:
        reasons.append(findings.EDIT_LOGO_TOUCHED)
    palette = tuple(colour.rgb for colour in charter.spec.palette)
    tolerance = charter.spec.palette_grading.tolerance
    before, after = conformity(original, palette, tolerance), conformity(edited, palette, tolerance)
    minimum = charter.spec.palette_grading.min_conformity
    if after < minimum and after < before:
        reasons.append(
            findings.EDIT_PALETTE_UNDER.format(
                conformity=f"{after:.0%}", minimum=f"{minimum:.0%}", before=f"{before:.0%}"
            )
        )
    if record.row["charter_hash"] != charter.hash:
        reasons.append(findings.EDIT_OTHER_CHARTER)
    return EditCheck(
        changed_share=round(float(changed.mean()), 5),
        changed_box=changed_box,
        size_changed=size_changed,
        label_seen=seen,
        label_touched=label_touched,
        logo_touched=logo_touched,
        palette_before=round(before, 4),
        palette_after=round(after, 4),
        passed=not reasons,
        reasons=reasons,
        notes=notes,
    )


def derivative_key(original: Original, edited: Image.Image, edit: Edit) -> str:
    """A derivative's identity: its original, its pixels and how it was made; the same edit, the same key."""
    pixels = hashlib.sha256(edited.tobytes()).hexdigest()
    return sha256_json(
        {
            "original": original.row["job_key"],
            "original_sha256": original.row["sha256"],
            "pixels": pixels,
            "size": list(edited.size),
            "edit": edit.description,
        }
    )


def file_type_of(target: Path) -> str:
    file_type = FILE_TYPES.get(target.suffix.lower())
    if file_type is None:
        raise VisuelsError(
            target, "output", "unsupported file type '{suffix}': use .png, .jpg or .webp", suffix=target.suffix
        )
    return file_type


def _recorded_name(target: Path, output_root: Path | None) -> str:
    resolved = target.resolve()
    if output_root is not None and resolved.is_relative_to(output_root.resolve()):
        return resolved.relative_to(output_root.resolve()).as_posix()
    return str(resolved)


def _made_already(rows: list[dict], target: Path, output_root: Path | None) -> tuple[Path, dict] | None:
    """The file recorded for the same edit (``rows``: its key's), when it is still there as
    recorded: ``target`` itself, or a file of its type beside it (the studio names each dropped
    file anew: the same drop sent twice, a retry after a lost answer, is the file made the first
    time), with its row."""
    for row in reversed(rows):
        recorded = Path(row["file"])
        if not recorded.is_absolute() and output_root is not None:
            recorded = output_root / recorded
        for candidate in (target, recorded):
            same_place = candidate == target or (
                candidate.parent.resolve() == target.parent.resolve()
                and candidate.suffix.lower() == target.suffix.lower()
            )
            if same_place and candidate.is_file() and _sha256(candidate.read_bytes()) == row["sha256"]:
                return candidate, row
    return None


def _free_target(target: Path, database: Database) -> Path:
    """``target``, unless a recorded file is there (an earlier edit's, perhaps published): then
    ``NAME-2.EXT``, ``NAME-3.EXT``... beside it. A file there that no record knows (a write cut
    short before its record) is replaced, so a re-run finishes it instead of making another."""
    candidate, number = target, 1
    while candidate.is_file() and ledger.by_sha256(database, _sha256(candidate.read_bytes())) is not None:
        number += 1
        candidate = target.with_name(f"{target.stem}-{number}{target.suffix}")
    return candidate


def _without_mark(
    edited: np.ndarray, original: np.ndarray, payload: str, signing: SigningFiles, kept: np.ndarray | None
) -> np.ndarray:
    """``edited`` with its original's mark taken out where its pixels were kept, so that only the
    new payload is read: subtracted with the key that wrote it (an older one, after a rotation)."""
    found, key = find_mark(original, known_keys(signing.private_key.parent))
    if key is None or found.payload != int(payload, 16):
        return edited  # the original's mark cannot be read: nothing known to take out
    return watermark.remove(edited, found.payload, key.value, kept)


def _ledger_entry(original: Original, edit: Edit, size: tuple[int, int], key: str, file: str) -> ledger.LedgerEntry:
    """The derivative's ledger row, before its file is written (hashes filled in as it is): the
    model that drew it (a retouch's own, else the original's), and the original as its parent."""
    row = original.row
    return ledger.LedgerEntry(
        file=file,
        sha256="",
        phash="",
        watermark=key[:16],
        job_key=key,
        model_hash=edit.model_hash or row["model_hash"],
        lora_hash=edit.lora_hash if edit.model_hash else row["lora_hash"],
        charter_hash=row["charter_hash"],
        prompt=edit.description,
        seed=edit.seed if edit.seed is not None else row["seed"],
        width=size[0],
        height=size[1],
        parent_id=row["id"],
    )


def _marking_context(original: Original, edit: Edit, charter: Charter, signing: SigningFiles) -> MarkingContext:
    """What the derivative's marks say. A retouch's model answers for its licence; a hand edit keeps
    the original's model and licence, and a campaign's override holds only while the original's
    model is the one that drew."""
    row = original.row
    same_model = edit.model_hash in (None, row["model_hash"])
    return MarkingContext(
        creator=charter.spec.creator,
        model=edit.description[:80],
        signing=signing,
        model_licence=edit.model_licence if edit.model_hash else row.get("model_licence"),
        licence_override=row.get("licence_override") if same_model else None,
    )


def mark_derivative(
    edited: Image.Image,
    original: Original,
    target: Path,
    edit: Edit,
    charter: Charter | None,
    database: Database,
    signing: SigningFiles,
    output_root: Path | None = None,
) -> Derivative:
    """Check, mark (watermark, XMP, C2PA ``c2pa.edited`` with the original as ingredient), write, record;
    against ``charter``, else the one the original was made with (``original_charter``)."""
    charter = charter or original_charter(database, original)
    file_type = file_type_of(target)
    with Image.open(io.BytesIO(original.data)) as decoded:
        original_image = decoded.convert("RGB")
        dpi = round(decoded.info.get("dpi", (72, 72))[0])
        parent_format = decoded.format or "PNG"
    check = check_edit(original_image, edited, charter, original)
    # The label is drawn again in its place, saying "modifiée" (the Code of Practice's word for an
    # edited picture); its plate covers the original's, and a hidden or touched label comes back.
    edited, _ = relabel(edited, charter, _label_language(charter, original), _template(charter, original))
    key = derivative_key(original, edited, edit)
    original_ref = OriginalRef(
        file=original.row["file"],
        job_key=original.row["job_key"],
        sha256=original.row["sha256"],
        ledger_id=original.row["id"],
    )
    already = _made_already(ledger.with_job_key(database, key), target, output_root)
    if already is not None:  # the same edit, already marked and recorded here: nothing recorded twice
        return _made_before(*already, original_ref, check)
    target = _free_target(target, database)
    row = original.row
    entry = _ledger_entry(original, edit, edited.size, key, _recorded_name(target, output_root))
    parent = Ingredient(title=original.path.name, data=original.data, mime_type=f"image/{parent_format.lower()}")
    context = _marking_context(original, edit, charter, signing)
    # The original's mark is taken out where its pixels were kept, so only the new payload is read.
    kept = None if edited.size != original_image.size else ~changed_pixels(original_image, edited)
    unmarked = _without_mark(np.asarray(edited), np.asarray(original_image), row["watermark"], signing, kept)
    remove_leftovers_of(target)  # a designer's folder: no render sweeps what a killed finalize left there
    with staged(target) as file:
        marked = write_marked(Image.fromarray(unmarked), file, file_type, entry, dpi, context, parent=parent)
        with database.transaction() as connection:  # as an export: moved into place once the record is ours
            # Looked for again as the next appender: the same edit marked by another process since
            # (a form sent twice, two designers at once) keeps its file, and this one is dropped.
            already = _made_already(ledger.with_job_key_as_appender(connection, key), target, output_root)
            if already is None:
                file.publish()
                ledger_id = ledger.append(connection, marked.record)
    if already is not None:
        return _made_before(*already, original_ref, check)
    return Derivative(
        file=str(target),
        sha256=marked.sha256,
        watermark=marked.watermark,
        job_key=key,
        ledger_id=ledger_id,
        original=original_ref,
        check=check,
    )


def _made_before(made: Path, row: dict, original: OriginalRef, check: EditCheck) -> Derivative:
    """The derivative an earlier run (or another process) marked and recorded as ``row``, at ``made``."""
    return Derivative(
        file=str(made),
        sha256=row["sha256"],
        watermark=row["watermark"],
        job_key=row["job_key"],
        ledger_id=row["id"],
        original=original,
        check=check,
        already_done=True,
    )


def default_target(edited: Path, original: Original) -> Path:
    """Beside the edited file, named after it, in the original's file type: ``poster-final.png``."""
    return finalized_beside(edited, Path(original.row["file"]).suffix or original.path.suffix)


def finalized_beside(edited: Path, suffix: str) -> Path:
    """``edited``'s finalized file beside it, in the file type ``suffix`` says: ``poster-final.png``."""
    return edited.with_name(f"{edited.stem}-final{suffix}")


def finalized_name(original: Path, dropped: Path, keep: Literal["original", "upload"]) -> Path:
    """Where the studio writes a finalized file: beside its original, named after it
    (``poster-final.png``, then ``poster-final-2.png``...), in the original's file type unless the
    designer asks for the dropped file's (a type visuels exports)."""
    wanted = dropped.suffix.lower() if keep == "upload" else original.suffix
    suffix = wanted if wanted in FILE_TYPES else original.suffix
    target, number = original.with_name(f"{original.stem}-final{suffix}"), 1
    while target.exists():
        number += 1
        target = original.with_name(f"{original.stem}-final-{number}{suffix}")
    return target


def _refuse_too_small_for_the_label(path: Path, size: tuple[int, int], charter: Charter, original: Original) -> None:
    """An edit cut down to a strip or a thumbnail cannot carry the AI label it is marked with: drawn
    again over its corner, the plate would be cut off, and the file would leave without a label."""
    box = label_place(size, charter, _label_language(charter, original), _template(charter, original)).box
    if box.left < 0 or box.top < 0 or box.right > size[0] or box.bottom > size[1]:
        raise ImageInputError(
            path,
            "edited",
            "{width}x{height} pixels: too small to carry the AI label, {label_width}x{label_height} pixels at its"
            " smallest: finalize a larger picture",
            width=size[0],
            height=size[1],
            label_width=box.width,
            label_height=box.height,
        )


def finalize_file(
    edited_path: Path,
    original_path: Path | None,
    target: Path | None,
    charter: Charter | None,
    database: Database,
    signing: SigningFiles,
    output_root: Path | None = None,
) -> Derivative:
    """Mark again a file edited outside visuels; its original is ``original_path``, else found by its
    marks. ``charter``: the one to check the edit against; None: the original's (``original_charter``)."""
    edited = read_picture(edited_path, "edited")
    if original_path is not None:
        original = find_original(database, original_path, output_root, "--from")
    else:
        original = find_original(database, edited_path, output_root, "original")
    if _sha256(edited_path.read_bytes()) == original.row["sha256"]:
        raise ImageInputError(edited_path, "edited", "is the exported file itself, unchanged: nothing to finalize")
    _refuse_too_small_for_the_label(edited_path, edited.size, charter or original_charter(database, original), original)
    edit = Edit(description=f"edited outside visuels ({edited_path.name})")
    return mark_derivative(
        edited, original, target or default_target(edited_path, original), edit, charter, database, signing, output_root
    )
