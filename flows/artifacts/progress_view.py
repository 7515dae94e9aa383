"""A run's progress as markdown with a drawn bar, for Prefect's artifact pages.

Prefect's own progress artifact shows as the words "Progress: 25%". This one shows a bar (an
inline SVG: the UI renders markdown images, and reads nothing from our folders), the count, the
time so far and an estimate of the time left.
"""

from __future__ import annotations

import base64

from visuels._internal.i18n import Words, words

BAR_WIDTH = 480
BAR_HEIGHT = 18
TRACK_COLOUR = "#4b5563"  # grey: legible on the UI's light and dark themes
DONE_COLOUR = "#22a06b"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _bar(share: float) -> str:
    filled = round(BAR_WIDTH * share)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{BAR_WIDTH}" height="{BAR_HEIGHT}">'
        f'<rect width="{BAR_WIDTH}" height="{BAR_HEIGHT}" rx="4" fill="{TRACK_COLOUR}"/>'
        f'<rect width="{filled}" height="{BAR_HEIGHT}" rx="4" fill="{DONE_COLOUR}"/></svg>'
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("ascii")).decode("ascii")


def progress_markdown(title: str, done: int, total: int, unit: str, elapsed_s: float, t: Words | None = None) -> str:
    """``done`` of ``total`` ``unit`` (a plural: "pictures", "shards") after ``elapsed_s`` seconds,
    in the words of ``t`` (default: English)."""
    t = t or words("en")
    share = done / total if total else 1.0
    percent = f"{share:.0%}" if t.lang == "en" else f"{share:.0%}".replace("%", " %")
    line = t(
        "**{done} of {total} {unit}** · {share} · {elapsed} so far",
        done=done,
        total=total,
        unit=unit,
        share=percent,
        elapsed=_duration(elapsed_s),
    )
    if 0 < done < total:
        line += t(" · about {left} left", left=_duration(elapsed_s / done * (total - done)))
    elif done >= total:
        line += t(" · done")
    return f"### {title}\n\n![{percent}]({_bar(share)})\n\n{line}\n"
