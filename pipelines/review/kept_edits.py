"""Edits saved over outputs, which a render kept beside them before making the output again
(``visuels.engine.export.keep_an_edit_aside``): where they are, and which still wait to be
finalized (marked again from the output, ``visuels.review.derivatives.finalize_file``).

They are found by their names, beside their outputs: a run keeps ``poster-1069fe734bdf-edited.png``
(then ``-edited-2``…) beside ``poster-1069fe734bdf.png``, and finalizing one writes
``poster-1069fe734bdf-edited-final.png`` beside it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from visuels.engine.export import EDIT_KEPT_AS
from visuels.review.derivatives import finalized_beside

_KEPT_NAME = re.compile(
    "^"
    + re.escape(EDIT_KEPT_AS)
    .replace(r"\{stem\}", "(?P<stem>.+)")
    .replace(r"\{number\}", r"(?:-[0-9]+)?")
    .replace(r"\{suffix\}", r"(?P<suffix>\.[A-Za-z0-9]+)")
    + "$"
)
# Folders of an output folder that hold no output: approved and set-aside copies, thumbnails, edge maps.
NOT_OUTPUTS = frozenset({"approved", "set-aside", "thumbnails", "edges"})


def output_of(edit: Path) -> Path | None:
    """The output ``edit`` was saved over, beside it, when its name is a kept edit's; else None."""
    named = _KEPT_NAME.match(edit.name)
    if named is None:
        return None
    output = edit.with_name(named["stem"] + named["suffix"])
    return output if output.is_file() else None


def finalized(edit: Path) -> Path:
    """Where finalizing ``edit`` writes, as `visuels finalize EDIT` does: beside it, ``NAME-final``."""
    return finalized_beside(edit, edit.suffix)  # the kept edit is in its output's file type


def waiting_beside(output: Path) -> list[Path]:
    """The edits kept beside ``output`` that are not finalized yet, oldest name first."""
    try:
        names = os.listdir(output.parent)
    except OSError:
        return []
    edits = [output.with_name(name) for name in names if _KEPT_NAME.match(name)]
    return sorted(
        (edit for edit in edits if output_of(edit) == output and not finalized(edit).exists()),
        key=lambda edit: (len(edit.name), edit.name),
    )


def waiting(output_root: Path, most: int | None = None) -> list[tuple[Path, Path]]:
    """The kept edits of the whole output folder (or a campaign's) not finalized yet, each with its
    output, at most ``most`` (walked in name order; a region's 600,000 files take about a second)."""
    found: list[tuple[Path, Path]] = []
    for folder, subfolders, names in os.walk(output_root):
        subfolders[:] = sorted(name for name in subfolders if name not in NOT_OUTPUTS and not name.startswith("."))
        for name in sorted(names):
            edit = Path(folder) / name
            output = output_of(edit) if _KEPT_NAME.match(name) else None
            if output is not None and not finalized(edit).exists():
                found.append((edit, output))
                if len(found) == most:
                    return found
    return found
