"""A contact sheet as markdown, with the thumbnails inlined, for Prefect's artifact pages.

Artifacts are stored by the Prefect server and shown by its UI, which cannot read our output
folder: the small JPEG thumbnails written at export travel inside the markdown as data URLs.
Past ``MAX_THUMBNAILS`` the sheet lists the rest by name and points to the campaign report.
"""

from __future__ import annotations

import base64
from pathlib import Path

MAX_THUMBNAILS = 48  # ~15 kB each: a sheet stays under a megabyte in the server's database


def _inline_jpeg(path: Path) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def contact_sheet_markdown(title: str, output_root: Path, listing: dict[str, dict]) -> str:
    """``listing`` maps the names shown to designers to manifest entries (with their thumbnail)."""
    lines = [f"# {title}", "", f"{len(listing)} file(s).", ""]
    names = sorted(listing)
    for name in names[:MAX_THUMBNAILS]:
        entry = listing[name]
        thumbnail = output_root / entry["thumbnail"]
        check = entry.get("compliance") or {}
        verdict = "" if not check else (" ✅" if check.get("passed") else " ⚠️ " + "; ".join(check.get("reasons", [])))
        if thumbnail.is_file():
            lines.append(f"![{name}]({_inline_jpeg(thumbnail)})")
        lines += [f"**{entry['key'][:12]}** `{name}`{verdict}", ""]
    if len(names) > MAX_THUMBNAILS:
        lines.append(f"… and {len(names) - MAX_THUMBNAILS} more (see the campaign report):")
        lines += [f"- **{listing[name]['key'][:12]}** `{name}`" for name in names[MAX_THUMBNAILS:]]
    return "\n".join(lines) + "\n"
