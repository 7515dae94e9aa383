"""Files people point at, as the machine that reads them spells their names."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator
from visuels.errors import InvalidValueError, Text
from visuels.inputs.text_files import composed

# What file systems allow (Linux's ext4 and tmpfs, macOS's APFS, NTFS): 255 bytes a name, 4,096 a
# path with the NUL that ends it. A longer one is refused where it is read, naming its field, rather
# than failing when the file is opened.
NAME_MOST_BYTES = 255
PATH_MOST_BYTES = 4095


def usable_path(text: str) -> str:
    """``text`` if a file system could have a file by that name; else the reason, for its field.
    Never empty: "" would be read as the file's own folder (`references: ""`, the charter's)."""
    if not text.strip():
        raise InvalidValueError("empty: give it a value")
    if "\x00" in text:
        raise InvalidValueError("a file name cannot hold a NUL character")
    if len(os.fsencode(text)) > PATH_MOST_BYTES:
        raise InvalidValueError(
            "a path of {size} bytes: file systems allow at most {most}",
            size=len(os.fsencode(text)),
            most=PATH_MOST_BYTES,
        )
    for name in Path(text).parts:
        if len(os.fsencode(name)) > NAME_MOST_BYTES:
            raise InvalidValueError(
                "a name of {size} bytes ('{start}…'): file systems allow at most {most}",
                size=len(os.fsencode(name)),
                start=name[:20],
                most=NAME_MOST_BYTES,
            )
    return text


# A path as a charter or campaign writes it (relative to its file, or absolute).
PathText = Annotated[str, AfterValidator(usable_path)]


def is_hidden(name: str) -> bool:
    """A name file managers hide: ``.DS_Store``, ``.git``, and ``._poster.png``, the AppleDouble a Mac
    writes beside each file it copies to a shared drive. Never a picture, a campaign or weights."""
    return name.startswith(".")


def files_in(folder: Path, suffixes: Collection[str]) -> list[Path]:
    """The entries of ``folder`` whose suffix (in any case) is one of ``suffixes``, by name; never a
    hidden one (``is_hidden``)."""
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in suffixes and not is_hidden(path.name))


def as_on_disk(path: Path) -> Path:
    """``path``, or, where it is not there, the one path on disk that spells each missing part in
    another Unicode form (``composed``: "Sète" as macOS stores it, ``e`` then a combining accent):
    a photo named on a Mac is found from a credit typed anywhere. The path unchanged when there is
    no such one."""
    return _spelt_otherwise(path, composed) or path


def case_hint(path: Path) -> Text | str:
    """For a file not found: `` (there is …/Logo.png: the names differ in case)`` when ``path``
    names an existing file in another case (a charter made on macOS or Windows, whose disks ignore
    case, read on Linux, whose disks do not); `` (there is logos/x.png: write / between folders…)``
    when it is written with Windows' ``\\`` (``logos\\x.png``: one file's name on Linux); else nothing."""
    as_written_on_windows = Path(str(path).replace("\\", "/"))
    if as_written_on_windows != path:
        found = as_written_on_windows if as_written_on_windows.exists() else _in_any_case(as_written_on_windows)
        if found:
            return Text(" (there is {found}: write / between folders, which Windows reads too)", found=found)
    found = _in_any_case(path)
    return Text(" (there is {found}: the names differ in case)", found=found) if found else ""


def _in_any_case(path: Path) -> Path | None:
    """The one existing path that is ``path`` but for the case of its missing parts."""
    return _spelt_otherwise(path, str.lower)


def _spelt_otherwise(path: Path, read_as: Callable[[str], str]) -> Path | None:
    """The one existing path whose missing parts ``read_as`` reads as ``path``'s; None when ``path``
    exists itself, or there is none, or more than one."""
    existing, missing = path, []
    while not existing.exists():
        if existing.parent == existing:
            return None
        missing.append(existing.name)
        existing = existing.parent
    for name in reversed(missing):
        try:
            same = [entry for entry in existing.iterdir() if read_as(entry.name) == read_as(name)]
        except OSError:
            return None
        if len(same) != 1:
            return None
        existing = same[0]
    return existing if missing else None
