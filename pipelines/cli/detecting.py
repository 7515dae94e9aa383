"""``visuels detect``: whether pictures carry this deployment's AI marks, from the files alone,
with a result anyone can keep and check (``--json``, ``--check``)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from visuels._internal.atomic import check_output_folder, write_text_atomic
from visuels._internal.i18n import Words, user_language, words
from visuels.cli.console import console, errors
from visuels.cli.files import pictures_named
from visuels.errors import EXIT_BAD_INPUT, EXIT_FINDING, EXIT_OK, Text, VisuelsError

if TYPE_CHECKING:
    from visuels.review.detect import Detection


def detect(files: Sequence[Path], charter_path: Path, result: Path | None, deep_model: str | None = None) -> int:
    """0: every file carries this deployment's marks; 1: one carries none; 2: one cannot be read
    (as grep: scripts can use it). ``result``: where to write the signed result. ``deep_model``:
    also read the starting-noise mark by inverting this model (``--deep``)."""
    from visuels.inputs.charter import load_charter
    from visuels.inputs.images import ImageInputError
    from visuels.marking.keys import TRUST_ANCHORS, detector_key, keys_dir
    from visuels.review.detect import detect_file, signed_result

    t = words(user_language())
    if result is not None:  # said before any picture is read, not after them all
        _check_result_target(result)
    files = pictures_named(files)
    charter = load_charter(charter_path)
    deep = deep_reader(deep_model, _records_near(files)) if deep_model is not None else None
    detections, status = [], EXIT_OK
    for path in files:
        try:
            detection = detect_file(path, charter, keys_dir() / TRUST_ANCHORS, deep=deep)
        except ImageInputError as exc:
            errors.print(t("error: {message}", message=exc.said(t)), highlight=False, markup=False)
            status = EXIT_BAD_INPUT
            continue
        detections.append(detection)
        _print_detection(detection, t)
        if detection.verdict == "unmarked":
            status = max(status, EXIT_FINDING)
    if result is not None:
        document = signed_result(detections, detector_key())
        write_text_atomic(result, json.dumps(document, indent=1, ensure_ascii=False) + "\n")
        console.print(t("signed result: {file}", file=result), highlight=False)
    return status


def _check_result_target(result: Path) -> None:
    """Where ``--json`` writes: a file in a folder this process may write in."""
    if result.is_dir():
        raise VisuelsError(result, "--json", "is a folder: name the result's file, e.g. result.json")
    check_output_folder(result.parent, "--json", Text("folder for the result"))


def deep_reader(model: str, database_urls: Sequence[str]) -> Callable:
    """The starting-noise mark's reader: ``model`` loaded on this machine's best device (float32),
    a worn mark confirmed against what the ledgers of ``database_urls`` record."""
    import torch
    from visuels.inputs.model_refs import parse_model_option
    from visuels.marking.keys import keys_dir
    from visuels.marking.watermark_keys import known_keys
    from visuels.models.devices import choose_device
    from visuels.models.host import ModelHost
    from visuels.models.reference import describe_named_model
    from visuels.review.deep_detect import DeepReader

    info = describe_named_model(parse_model_option(model, "--deep"), "--deep")
    urls = tuple(database_urls)
    recorded = functools.partial(recorded_noise_marks, urls)
    drawn_marked = functools.partial(drawn_from_marked_noise, urls)
    return DeepReader(ModelHost(choose_device()), info, known_keys(keys_dir()), torch.float32, recorded, drawn_marked)


def _records_near(files: Sequence[Path]) -> list[str]:
    """The records the files would be in, as ``verify`` finds each file's (the output folder it
    lies in, else ``$VISUELS_DATABASE_URL`` or ./outputs'); none for files from outside."""
    from visuels.cli.console import record_near

    return sorted({url for path in files if (url := record_near(path)) is not None})


def recorded_noise_marks(database_urls: Sequence[str]) -> list[int]:
    """The starting-noise marks these ledgers record, once each."""
    from visuels.record.database import Database
    from visuels.record.ledger import noise_marks

    recorded: set[int] = set()
    for url in database_urls:
        with closing(Database(url, must_exist=True)) as database:
            recorded.update(noise_marks(database))
    return sorted(recorded)


def drawn_from_marked_noise(database_urls: Sequence[str], watermark: str) -> bool | None:
    """Whether these ledgers record the picture of ``watermark`` as drawn from marked starting
    noise: True if one does, False if one knows it drawn without, None if none knows it."""
    from visuels.record import ledger
    from visuels.record.database import Database

    known = None
    for url in database_urls:
        with closing(Database(url, must_exist=True)) as database:
            drawn = ledger.drawn_from_marked_noise(database, watermark)
        if drawn:
            return True
        known = drawn if drawn is not None else known
    return known


def _print_detection(detection: Detection, t: Words) -> None:
    from visuels.review.detect import MARK_NAMES, verdict_line

    marked = detection.verdict == "marked"
    console.print(("[green]" if marked else "[yellow]") + verdict_line(detection).said(t), highlight=False)
    for name, mark in detection.marks.items():
        said = t("{mark}: {basis}", mark=MARK_NAMES[name].said(t), basis=mark.said(t))
        console.print(f"    {'+' if mark.found else '-'} {said}", highlight=False, markup=False)


def check(result: Path) -> int:
    """0: the result's signature holds (by this deployment's detector or another, said); 2: it was
    changed, or is no result."""
    from visuels.marking.keys import DETECTOR_KEY, detector_key, keys_dir
    from visuels.review.detect import check_result, verdict_line

    t = words(user_language())
    known = detector_key().public_key() if (keys_dir() / DETECTOR_KEY).is_file() else None
    detections, ours = check_result(result, known)
    said = (
        Text("{file}: signature valid, by this deployment's detector", file=result)
        if ours
        else Text("{file}: signature valid, by a detector key this deployment does not hold", file=result)
    )
    console.print(said.said(t), highlight=False)
    for detection in detections:
        console.print(
            f"    {detection.sha256[:16]}  {detection.checked_at}  {verdict_line(detection).said(t)}",
            highlight=False,
            markup=False,
        )
    return EXIT_OK if detections else EXIT_BAD_INPUT
