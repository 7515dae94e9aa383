"""A contact sheet as markdown, with the thumbnails inlined, for Prefect's artifact pages.

Artifacts are stored by the Prefect server and shown by its UI, which cannot read our output
folder: the small JPEG thumbnails written at export travel inside the markdown as data URLs.
The sheet is a grid (a markdown table, which the UI renders): a row of pictures, then a row with
each one's code, commune, format, audience and charter verdict. Past ``MAX_THUMBNAILS`` the
sheet lists the next ``MAX_LISTED`` by name and points to the campaign report for all of them.
"""

from __future__ import annotations

import base64
from pathlib import Path

from visuels._internal.i18n import Words, words
from visuels.review.report import commune_code, commune_labels

MAX_THUMBNAILS = 48  # ~15 kB each: a sheet stays under a megabyte in the server's database
MAX_LISTED = 1000  # names after the thumbnails: a region's 100,000 would make megabytes no page shows
COLUMNS = 4


def _inline_jpeg(path: Path) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _caption(name: str, entry: dict, commune: str, t: Words) -> str:
    inputs = entry.get("inputs") or {}
    check = entry.get("compliance") or {}
    # Text symbols, not emoji: they show in any font, where an emoji may be an empty box.
    verdict = "" if not check else (" ✔" if check.get("passed") else " ⚠")
    flags = " ⚑ " + "; ".join(reason.said(t) for reason in entry["attention"]) if entry.get("attention") else ""
    parts = (commune, inputs.get("format"), inputs.get("audience"), inputs.get("language"))
    what = " · ".join(part for part in parts if part)
    return f"**{entry['key'][:12]}** {what or name}{verdict}{flags}".replace("|", "/")


def contact_sheet_markdown(title: str, output_root: Path, listing: dict[str, dict], t: Words | None = None) -> str:
    """``listing`` maps the names shown to designers to manifest entries (with key and thumbnail), in
    the order to show them (``review_listing``: those to look at first first); in the words of ``t``."""
    t = t or words("en")
    count = t.plural(
        "1 file. Codes in bold name the files in the review form.",
        "{count} files. Codes in bold name the files in the review form.",
        len(listing),
    )
    lines = [f"# {title}", "", count, ""]
    names = list(listing)
    # Communes of one name are told apart by their code, as in the report and the studio.
    recorded = {name: entry.get("inputs") or {} for name, entry in listing.items()}
    communes = commune_labels((commune_code(inputs), inputs.get("commune_name", "")) for inputs in recorded.values())
    shown = names[:MAX_THUMBNAILS]
    if shown:
        lines += ["| " + " | ".join([" "] * COLUMNS) + " |", "|" + "---|" * COLUMNS]
    for start in range(0, len(shown), COLUMNS):
        row = shown[start : start + COLUMNS]
        pictures, captions = [], []
        for name in row:
            thumbnail = output_root / listing[name]["thumbnail"]
            pictures.append(f"![{name}]({_inline_jpeg(thumbnail)})" if thumbnail.is_file() else name)
            captions.append(_caption(name, listing[name], communes[commune_code(recorded[name])], t))
        padding = [" "] * (COLUMNS - len(row))
        lines.append("| " + " | ".join(pictures + padding) + " |")
        lines.append("| " + " | ".join(captions + padding) + " |")
    if len(names) > MAX_THUMBNAILS:
        more = t.plural(
            "… and 1 more (see the campaign report):",
            "… and {count} more (see the campaign report):",
            len(names) - MAX_THUMBNAILS,
        )
        lines += ["", more]
        listed = names[MAX_THUMBNAILS : MAX_THUMBNAILS + MAX_LISTED]
        lines += [f"- **{listing[name]['key'][:12]}** `{name}`" for name in listed]
        if len(names) > MAX_THUMBNAILS + MAX_LISTED:
            unlisted = len(names) - MAX_THUMBNAILS - MAX_LISTED
            lines += ["", t.plural("… 1 other: in the report.", "… {count} others: in the report.", unlisted)]
    return "\n".join(lines) + "\n"
