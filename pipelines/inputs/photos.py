"""Commune photos: real pictures of a place that a render starts from, with their credits.

A commune's row in the communes CSV may name a folder of photos (``photos`` column, relative to
the CSV). The folder holds the pictures and ``photos.yaml``, which credits each one:

    photos:
      - {file: port.jpg, author: Jeanne Martin, licence: CC BY 4.0, date: 2025-06-14}

A render from a photo starts from it (img2img) and/or follows its structure: its edges (Canny)
steer a ControlNet. Both read the photo fitted to the generation size, through this module.
"""

from __future__ import annotations

import datetime as dt
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from pydantic import Field, field_validator
from visuels._internal.strict import Filled, StrictModel
from visuels.errors import CommunesError, InvalidValueError, Text
from visuels.inputs.file_names import PathText, as_on_disk, case_hint, files_in
from visuels.inputs.images import MAX_PIXELS, PICTURE_SUFFIXES, read_picture, unreadable_kind
from visuels.inputs.text_files import composed
from visuels.inputs.yamlfiles import read_yaml_mapping, validate_model

CREDITS_FILE = "photos.yaml"
CHECK_SCALE = 8  # a JPEG is checked decoded at 1/8 size: every byte still read, eight times faster
TURNED = (5, 6, 7, 8)  # EXIF orientations that show the stored picture turned a quarter


class PhotoCredit(StrictModel):
    """One photo's entry in ``photos.yaml``: who took it, under which licence, when."""

    file: PathText = Field(min_length=1, description="File name in the same folder.")
    author: Filled = Field(max_length=200)
    licence: Filled = Field(max_length=200)
    date: dt.date
    stand_in: bool = Field(default=False, description="Drawn by code for the sample: not a real photo.")

    @field_validator("date", mode="before")
    @classmethod
    def _a_date(cls, value: object) -> object:
        """A date as YAML reads it (2025-06-14), or written in quotes the same way; a French one
        (14/06/2025) is refused saying how to write it, never read month first."""
        if not isinstance(value, str):
            return value
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
        day_first = re.fullmatch(r"\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})\s*", value)
        try:
            meant = dt.date(*map(int, reversed(day_first.groups()))) if day_first else None
        except ValueError:
            meant = None
        if meant:
            raise InvalidValueError(
                "'{value}': write the date year first, {meant}", value=value, meant=meant.isoformat()
            )
        raise InvalidValueError("'{value}' is not a date: write it year first, as 2025-06-14", value=value)

    @field_validator("file")
    @classmethod
    def _in_the_same_folder(cls, value: str) -> str:
        if "/" in value or "\\" in value:
            raise InvalidValueError(
                "'{value}' is not a file name: a photo's credit names a file in its own folder, without / or \\",
                value=value,
            )
        return value


class PhotoCredits(StrictModel):
    photos: list[PhotoCredit] = Field(min_length=1)


class CommunePhoto(StrictModel):
    """A checked photo of a commune and its credit."""

    path: Path
    credit: PhotoCredit
    field: str = Field(description="Where photos.yaml credits it, for errors: photos[0].file.")

    def credit_line(self) -> str:
        """How the photo is credited in metadata and reports: "Author, licence, date"."""
        made = "stand-in, not a photo; " if self.credit.stand_in else ""
        return f"{self.credit.author} ({made}{self.credit.licence}, {self.credit.date.isoformat()})"


def _check_readable(credits_file: Path, field: str, path: Path, decode: bool = False) -> None:
    """The photo's header (a folder of large photos checks fast), or with ``decode`` every byte of
    it: a truncated file is then refused before anything renders, not in the middle of a render."""
    if not path.is_file():
        raise CommunesError(credits_file, field, "photo not found: {path}{hint}", path=path, hint=case_hint(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width * image.height > MAX_PIXELS:  # from the header, before any pixel is decoded
                    raise CommunesError(
                        credits_file,
                        field,
                        "{width}x{height} is too large: {path}",
                        width=image.width,
                        height=image.height,
                        path=path,
                    )
                if decode:
                    # JPEG only; a side never under 1 pixel (Pillow divides by it: a strip of a photo)
                    image.draft("RGB", (max(1, image.width // CHECK_SCALE), max(1, image.height // CHECK_SCALE)))
                    image.load()
    except Image.DecompressionBombError:  # Pillow's own limit, past ours: the header is not even read
        raise CommunesError(
            credits_file, field, "more than {MAX_PIXELS:,} pixels, too large: {path}", MAX_PIXELS=MAX_PIXELS, path=path
        ) from None
    except UnidentifiedImageError:
        with path.open("rb") as file:
            kind = unreadable_kind(file.read(2048))
        raise CommunesError(credits_file, field, "{path}: {kind}", path=path, kind=kind) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise CommunesError(
            credits_file, field, "not a readable image: {path} ({exc})", path=path, exc=str(exc)
        ) from None


def check_decodes(photos: Iterable[CommunePhoto]) -> None:
    """Each photo decodes to its last byte (only the photos a campaign uses: a region's library may
    hold thousands); a truncated or damaged one is refused naming its credit."""
    for photo in photos:
        _check_readable(photo.path.parent / CREDITS_FILE, photo.field, photo.path, decode=True)


def load_photo_folder(folder: Path, csv_path: Path, where: str | Text) -> tuple[CommunePhoto, ...]:
    """The photos of one commune's folder, each credited; ``where`` is the CSV row's field for errors."""
    if not folder.is_dir():
        raise CommunesError(
            csv_path, where, "photo folder not found: {folder}{hint}", folder=folder, hint=case_hint(folder)
        )
    credits_file = folder / CREDITS_FILE
    if not credits_file.is_file():
        raise CommunesError(
            csv_path,
            where,
            "{folder} has no {CREDITS_FILE} crediting its photos",
            folder=folder,
            CREDITS_FILE=CREDITS_FILE,
        )
    credits = validate_model(PhotoCredits, read_yaml_mapping(credits_file, CommunesError), credits_file, CommunesError)
    photos = []
    seen: set[str] = set()  # as a person reads the names (``composed``)
    for index, credit in enumerate(credits.photos):
        field = f"photos[{index}].file"
        if composed(credit.file) in seen:
            raise CommunesError(credits_file, field, "{file} is credited twice", file=credit.file)
        seen.add(composed(credit.file))
        if not credit.file.lower().endswith(PICTURE_SUFFIXES):
            raise CommunesError(
                credits_file, field, "{file}: a photo is {value}", file=credit.file, value=", ".join(PICTURE_SUFFIXES)
            )
        path = as_on_disk(folder / credit.file)
        _check_readable(credits_file, field, path)
        photos.append(CommunePhoto(path=path.resolve(), credit=credit, field=field))
    uncredited = sorted(path.name for path in files_in(folder, PICTURE_SUFFIXES) if composed(path.name) not in seen)
    if uncredited:  # a photo without author and licence must never reach a published picture
        raise CommunesError(
            credits_file, "photos", "{uncredited} is in the folder but not credited here", uncredited=uncredited[0]
        )
    return tuple(photos)


def fit_photo(path: Path, width: int, height: int) -> np.ndarray:
    """The photo, upright, in sRGB (through its ICC profile; transparency on white), cropped to the aspect
    ratio around its centre and resized: H×W×3 uint8."""
    fitted = ImageOps.fit(read_picture(path, "photo"), (width, height), Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    return np.asarray(fitted)


def upright_size(path: Path) -> tuple[int, int]:
    """The photo's width and height as it is shown (its EXIF orientation applied), from its header."""
    with Image.open(path) as image:
        width, height = image.size
        try:
            turned = image.getexif().get(ExifTags.Base.Orientation) in TURNED
        except (OSError, SyntaxError, ValueError):  # unreadable EXIF: shown as stored, as read_picture does
            turned = False
    return (height, width) if turned else (width, height)


def enlargement(size: tuple[int, int], width: int, height: int) -> float:
    """How many times ``fit_photo`` enlarges a photo of ``size`` to fill width×height (under 1: reduced)."""
    return max(width / size[0], height / size[1])


def edge_map(pixels: np.ndarray, low: int, high: int) -> np.ndarray:
    """Canny edges of an RGB picture (H×W uint8, 255 on an edge), as ControlNets for edges expect."""
    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    return cv2.Canny(grey, low, high)
