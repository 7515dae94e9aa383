"""Files people point at, as the machine that reads them spells their names."""

from __future__ import annotations

from pathlib import Path

from visuels.errors import Text


def case_hint(path: Path) -> Text | str:
    """For a file not found: `` (there is …/Logo.png: the names differ in case)`` when ``path``
    names an existing file in another case (a charter made on macOS or Windows, whose disks ignore
    case, read on Linux, whose disks do not); else nothing."""
    found = _in_any_case(path)
    return Text(" (there is {found}: the names differ in case)", found=found) if found else ""


def _in_any_case(path: Path) -> Path | None:
    """The one existing path that is ``path`` but for the case of its missing parts."""
    existing, missing = path, []
    while not existing.exists():
        if existing.parent == existing:
            return None
        missing.append(existing.name)
        existing = existing.parent
    for name in reversed(missing):
        try:
            same = [entry for entry in existing.iterdir() if entry.name.lower() == name.lower()]
        except OSError:
            return None
        if len(same) != 1:
            return None
        existing = same[0]
    return existing if missing else None
