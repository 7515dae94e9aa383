"""The commands on files that reached someone: ``verify`` their marks, ``finalize`` an outside edit,
``retouch`` an output with its own model."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from visuels._internal.atomic import check_output_folder, remove_leftover_temporaries, remove_leftovers_of
from visuels._internal.i18n import Words, joined, user_language, words
from visuels.cli.console import console, database_url_option, errors, open_record, record_folder, record_near
from visuels.errors import EXIT_BAD_INPUT, EXIT_FINDING, EXIT_OK, VisuelsError
from visuels.inputs.file_names import is_hidden
from visuels.inputs.yamlfiles import first_problem

if TYPE_CHECKING:
    from visuels.record.database import Database
    from visuels.review.derivatives import Derivative
    from visuels.review.verify import FileReport


# A folder stands for the files in it with these suffixes: what visuels exports (PNG, JPEG, WebP)
# and the other formats pictures are published or passed around in, so that a picture someone
# converted to GIF or TIFF is checked, and found unmarked, rather than silently left out.
PICTURE_SUFFIXES = {
    ".png",
    ".apng",
    ".jpg",
    ".jpeg",
    ".jpe",
    ".jfif",
    ".webp",
    ".avif",
    ".gif",
    ".tif",
    ".tiff",
    ".bmp",
}
# What an output folder keeps for itself and never publishes: the report's thumbnails and the edge
# maps of the photos renders started from.
KEPT_FOR_ITSELF = {"thumbnails", "edges"}


def _left_out(parts: Sequence[str]) -> bool:
    """A folder whose pictures a folder named stands for none of: what an output folder keeps for
    itself, and hidden folders (``.Trash``, a copy's ``.git``)."""
    return bool(KEPT_FOR_ITSELF.intersection(parts)) or any(is_hidden(part) for part in parts)


def pictures_named(paths: Sequence[Path]) -> list[Path]:
    """The files named, each folder standing for the pictures in it and below (in order), less
    those an output folder keeps for itself; a folder without any is bad input. Links are not
    followed: a link named on the command line is checked as the file it is (a link to a folder
    is refused as one), and links inside a folder are left out."""
    found = []
    for path in paths:
        if path.is_symlink() or not path.is_dir():
            found.append(path)
            continue
        inside = sorted(
            Path(folder, name)
            for folder, _, names in os.walk(path)  # links to folders are not walked into
            if not _left_out(Path(folder).relative_to(path).parts)
            for name in names
            if Path(name).suffix.lower() in PICTURE_SUFFIXES
            and not is_hidden(name)  # a Mac's ._poster.png beside each picture on a shared drive
            and not Path(folder, name).is_symlink()
        )
        if not inside:
            raise VisuelsError(path, None, "holds no picture (PNG, JPEG, WebP, AVIF, GIF, TIFF or BMP)")
        found += inside
    return found


def verify(
    files: Sequence[Path], as_json: bool, database_option: str | None, charter_path: Path, allow_untrusted: bool
) -> int:
    """0: every layer of every file is there and valid; 1: some layer is not; 2: a file is unreadable."""
    import json

    from visuels.inputs.charter import load_charter
    from visuels.marking.keys import TRUST_ANCHORS, keys_dir
    from visuels.review.verify import verify_file

    files = pictures_named(files)
    charter = load_charter(charter_path)
    databases: dict[str, Database | None] = {}  # each file is checked against the record of its own output folder
    reports = []
    try:
        for path in files:
            url = database_url_option(database_option, path) if database_option else record_near(path)
            if url not in databases:
                databases[url] = open_record(url) if url else None
            anchors = keys_dir() / TRUST_ANCHORS
            reports.append(verify_file(path, charter, databases[url], anchors, allow_untrusted))
            if not as_json:  # as each file is checked: a long list shows its progress
                _print_verdict(reports[-1])
    finally:
        for database in databases.values():
            if database is not None:
                database.close()
    if as_json:
        print(json.dumps([report.model_dump() for report in reports], indent=2, ensure_ascii=False))
        t = words(user_language())
        for report in reports:
            if report.error:
                message = f"{report.file}: {report.error_said(t)}"
                errors.print(t("error: {message}", message=message), highlight=False, markup=False)
    else:
        good = sum(report.ok for report in reports)
        unreadable = sum(report.error is not None for report in reports)
        bad = len(reports) - good - unreadable
        t = words(user_language())
        total = t.plural(
            "1 file: {good} ok, {bad} BAD", "{count} files: {good} ok, {bad} BAD", len(reports), good=good, bad=bad
        )
        unread = t.plural(", 1 unreadable", ", {count} unreadable", unreadable) if unreadable else ""
        console.print(total + unread, highlight=False)
    if any(report.error for report in reports):
        return EXIT_BAD_INPUT
    return EXIT_OK if all(report.ok for report in reports) else EXIT_FINDING


def _print_verdict(report: FileReport) -> None:
    """One file's line (ok or BAD, each layer), its failed checks, and for a BAD one what to do."""
    t = words(user_language())
    if report.error:
        message = f"{report.file}: {report.error_said(t)}"
        errors.print(t("error: {message}", message=message), highlight=False, markup=False)
        return
    console.print(report.summary().said(t), highlight=False, markup=False)
    for name, check in report.checks.items():
        if not check.passed:
            console.print(f"    {name}: {check.said(t)}", highlight=False, markup=False)
    if not report.ok:
        console.print("    " + t("what to do: {remedy}", remedy=_remedy(report, t)), highlight=False, markup=False)


def _remedy(report: FileReport, t: Words) -> str:
    """What a BAD file's owner can do about it, from which marks are left."""
    if report.watermark_key_missing:
        return t(
            "verify it with the watermark keys of the deployment that made it: where they are, or with"
            " VISUELS_KEYS_DIR naming a copy of its keys folder"
        )
    if report.watermark is None and report.c2pa == "missing":
        return t("it carries none of this project's marks: not one of its pictures, or its marks were removed")
    if report.watermark is not None:
        return t(
            "an edited copy of one of its pictures: `visuels finalize {file}` marks it again"
            " (label, watermark, XMP, C2PA) and records it",
            file=report.file,
        )
    return t(
        "its watermark is gone but its metadata is left: render it again, or finalize it from its original (--from)"
    )


def _finalize_targets(files: Sequence[Path], output: Path | None) -> list[Path | None]:
    from visuels.review.derivatives import FILE_TYPES

    if output is None:
        return [None] * len(files)
    # A folder: several files, an existing folder, or a name without a picture suffix.
    if len(files) > 1 or output.is_dir() or not output.suffix:
        if output.exists() and not output.is_dir():
            raise VisuelsError(output, "--output", "with several files, OUT must be a folder")
        check_output_folder(output, "--output")  # before a file is marked: none half-done
        # Named as each edited file; a TIFF or PSD export (print work) comes out as a PNG, lossless too.
        return [output / (path.name if path.suffix.lower() in FILE_TYPES else f"{path.stem}.png") for path in files]
    check_output_folder(output.parent, "--output")
    return [output]


def finalize(args: argparse.Namespace) -> int:
    """0: every file marked and within the charter; 1: marked, but some charter check failed; 2: bad input."""
    from visuels.inputs.charter import load_charter
    from visuels.marking.keys import signing_files
    from visuels.review.derivatives import finalize_file

    charter = load_charter(args.charter) if args.charter else None  # None: each original's own
    signing = signing_files()
    targets = _finalize_targets(args.files, args.output)
    database = open_record(args.database, args.original or args.files[0])
    status = 0
    try:
        for path, target in zip(args.files, targets, strict=True):
            done = finalize_file(path, args.original, target, charter, database, signing, record_folder(database))
            _print_derivative(path, done)
            if not done.check.passed:
                status = EXIT_FINDING
    finally:
        database.close()
    return status


def timestamp(args: argparse.Namespace) -> int:
    """0: every file time-stamped (now or before), a folder's pictures that are not exports said and
    left; 2: a file named that is not recorded, or no time-stamp authority."""
    from visuels.inputs.images import ImageInputError
    from visuels.marking.keys import signing_files
    from visuels.review.timestamp import time_stamp_file

    t = words(user_language())
    signing = signing_files()
    files = pictures_named(args.files)
    named = {path for path in args.files if path.is_symlink() or not path.is_dir()}
    for given in args.files:  # what a stamp killed mid-write left, before the pictures are published
        if given in named:
            remove_leftovers_of(given)
        else:
            remove_leftover_temporaries(given)
    database = open_record(args.database, files[0])
    try:
        for path in files:
            try:
                done = time_stamp_file(path, database, signing, record_folder(database))
            except ImageInputError as exc:
                if path in named:
                    raise
                # Found in a folder: a region stamps a campaign's folder, where an edit kept beside
                # its output or a file set aside is no export; said, and the others stamped.
                console.print(t("left as it is: {reason}", reason=exc.said(t)), highlight=False, markup=False)
                continue
            if done.already:
                said = t("{file}: already time-stamped ({time})", file=path, time=done.signed_at)
            elif done.copy_of:
                said = t(
                    "{file}: a copy of {export}, which is time-stamped {time} and recorded; the copy has its bytes now",
                    file=path,
                    export=done.copy_of,
                    time=done.signed_at,
                )
            else:
                said = t("{file}: time-stamped {time}, recorded", file=path, time=done.signed_at)
            console.print(said, highlight=False, markup=False)
    finally:
        database.close()
    return EXIT_OK


def layers(args: argparse.Namespace) -> int:
    """0: every layered file written; 2: bad input (not in the record, not a template layout)."""
    from visuels.inputs.charter import load_charter
    from visuels.review.layers import layered_file

    charter = load_charter(args.charter) if args.charter else None  # None: each original's own
    database = open_record(args.database, args.files[0])
    t = words(user_language())
    try:
        for path in args.files:
            written = layered_file(path, charter, database, record_folder(database))
            line = t(
                "{file} -> {layered}: {count} layers ({names}); export from it, then `visuels finalize` the exported"
                " file",
                file=path,
                layered=written.path,
                count=len(written.layers),
                names=", ".join(written.layers),
            )
            console.print(line, highlight=False, markup=False)
    finally:
        database.close()
    return 0


def _print_derivative(source: Path, done: Derivative) -> None:
    from visuels.postprocess import findings

    t = words(user_language())
    check = done.check
    where = t("changed {share} of the pixels", share=findings.as_written(f"{check.changed_share:.1%}", t)) + (
        t(" in {box}", box=check.changed_box) if check.changed_box else ""
    )
    verdict = (
        t("charter ok")
        if check.passed
        else t("charter: {reasons}", reasons=joined(check.reasons, findings.said).said(t))
    )
    if check.notes:
        verdict = t("{first}; {rest}", first=verdict, rest=joined(check.notes, findings.said).said(t))
    line = t(
        "{state} {source} -> {file}: {done} (ledger #{id}, from {original} #{original_id}); {where}; {verdict}",
        state="ok " if check.passed else "CHECK",
        source=source,
        file=done.file,
        done=t("already marked") if done.already_done else t("marked"),
        id=done.ledger_id,
        original=done.original.file,
        original_id=done.original.ledger_id,
        where=where,
        verdict=verdict,
    )
    console.print(line, highlight=False, markup=False)


def retouch(args: argparse.Namespace) -> int:
    """Variants of an output, each marked and recorded; 1 if one fails a charter check."""
    from visuels._internal.atomic import check_output_folder
    from visuels.inputs.charter import load_charter
    from visuels.inputs.images import read_mask, read_picture
    from visuels.marking.keys import signing_files
    from visuels.models.devices import choose_device, choose_dtype
    from visuels.models.host import ModelHost
    from visuels.record import model_sources
    from visuels.review.decisions import outside_approved
    from visuels.review.derivatives import file_type_of, find_original, mark_derivative
    from visuels.review.retouch import RetouchSettings, instruct_model, retouch, retouch_edit, retouch_model

    try:
        settings = RetouchSettings(
            prompt=args.prompt,
            mode=args.mode,
            variants=args.variants,
            strength=args.strength,
            seed=args.seed,
            steps=args.steps,
        )
    except ValidationError as exc:
        location, message = first_problem(exc)
        raise VisuelsError("visuels retouch", "--" + str(location[-1]), message) from None
    charter = load_charter(args.charter) if args.charter else None  # None: each original's own
    signing = signing_files()
    database = open_record(args.database, args.image)
    status = 0
    try:
        original = find_original(database, args.image, record_folder(database), "IMAGE")
        picture = read_picture(original.path, "IMAGE")
        mask = read_mask(args.mask, picture.size, "--mask") if args.mask else None
        if settings.mode == "instruct":
            if args.model or args.lora:  # they name what made the picture, which an edit does not use
                raise VisuelsError(
                    "visuels retouch",
                    "--model" if args.model else "--lora",
                    "retouching by instruction uses the edit model alone: give --edit-model, not --model or --lora",
                )
            model = instruct_model(args.edit_model)
            model_sources.record(database, model.model_hash, model.ref, None, None)  # the record names its files
        else:
            model = retouch_model(database, original, args.model, args.lora)
        file_type_of(original.path)  # a format the variants can be written in, before any work
        folder = args.output_dir or outside_approved(args.image, original.row["file"]).parent
        check_output_folder(folder, "--output-dir" if args.output_dir else None)
        device = choose_device(args.device)
        t = words(user_language())
        making = t.plural(
            "1 variant of {image} with {model} on {device}",
            "{count} variants of {image} with {model} on {device}",
            settings.variants,
            image=args.image,
            model=t(model.description),  # the demo model's in the reader's words, a folder's as named
            device=device,
        )
        console.print(making, highlight=False, markup=False)
        variants = retouch(ModelHost(device), model, picture, mask, settings, choose_dtype(device))
        for number, variant in enumerate(variants):
            target = folder / f"{args.image.stem}-retouch-{settings.seed + number}{original.path.suffix}"
            edit = retouch_edit(model, settings, number)
            done = mark_derivative(variant, original, target, edit, charter, database, signing, record_folder(database))
            _print_derivative(args.image, done)
            status = status or (EXIT_OK if done.check.passed else EXIT_FINDING)
    finally:
        database.close()
    return status
