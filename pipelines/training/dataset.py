"""The training set: a charter's reference images, each with a caption in a sidecar ``.txt``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from visuels.errors import VisuelsError
from visuels.inputs.file_names import files_in
from visuels.inputs.images import PICTURE_SUFFIXES, ImageInputError, read_picture
from visuels.inputs.text_files import decoded_text, not_utf8

MIN_IMAGES = 5
DEFAULT_RESOLUTION = 256  # training pictures' side unless a run asks for another


class DatasetError(VisuelsError):
    """A training folder, image or caption is unusable."""


@dataclass(frozen=True)
class TrainingSet:
    pixels: np.ndarray  # (n, size, size, 3) uint8, centre-cropped and resized
    captions: list[str]
    files: list[Path]
    hash: str


def load_training_set(folder: Path, size: int) -> TrainingSet:
    """Validate the folder and return its pictures at ``size`` x ``size`` with their captions; the
    first problem met raises :class:`DatasetError`."""
    files = _picture_files(folder)
    pixels, captions = [], []
    digest = hashlib.sha256()
    for path in files:
        square, caption = _read_reference(path, size)
        pixels.append(square)
        captions.append(caption)
        digest.update(hashlib.sha256(path.read_bytes()).digest())
        digest.update(caption.encode("utf-8"))
    return TrainingSet(pixels=np.stack(pixels), captions=captions, files=files, hash=digest.hexdigest())


def training_set_problems(folder: Path, size: int) -> list[DatasetError]:
    """Every problem ``load_training_set`` would stop at, one per picture, so that a designer
    mends them all at once (``visuels check`` of the charter)."""
    try:
        files = _picture_files(folder)
    except DatasetError as problem:
        return [problem]
    problems = []
    for path in files:
        try:
            _read_reference(path, size)
        except DatasetError as problem:
            problems.append(problem)
    return problems


def _picture_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(folder, None, "folder not found")
    files = files_in(folder, PICTURE_SUFFIXES)
    if len(files) < MIN_IMAGES:
        count = len(files)
        if count == 1:
            raise DatasetError(folder, None, "1 picture; training needs at least {MIN_IMAGES}", MIN_IMAGES=MIN_IMAGES)
        raise DatasetError(
            folder, None, "{count} pictures; training needs at least {MIN_IMAGES}", count=count, MIN_IMAGES=MIN_IMAGES
        )
    return files


def _read_reference(path: Path, size: int) -> tuple[np.ndarray, str]:
    """One reference picture, centre-cropped to ``size`` x ``size``, and its caption."""
    caption_file = path.with_suffix(".txt")
    if not caption_file.is_file():
        raise DatasetError(path, "caption", "missing caption file {name}", name=caption_file.name)
    try:
        caption = decoded_text(caption_file.read_bytes()).strip()  # as Notepad or TextEdit saved it
    except UnicodeDecodeError as exc:
        raise DatasetError(caption_file, "caption", not_utf8(exc)) from None
    if not caption:
        raise DatasetError(caption_file, "caption", "caption is empty")
    try:
        picture = read_picture(path)  # upright (EXIF), sRGB, transparency on white
    except ImageInputError as exc:
        raise DatasetError(path, None, exc.message) from None
    if min(picture.size) < size:
        raise DatasetError(
            path,
            "size",
            "{width}x{height} is smaller than {size} px",
            width=picture.size[0],
            height=picture.size[1],
            size=size,
        )
    side = min(picture.size)
    left, top = (picture.width - side) // 2, (picture.height - side) // 2
    square = picture.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(square), caption
