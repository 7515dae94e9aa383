"""A run's progress as markdown with a drawn bar, for Prefect's artifact pages.

Prefect's own progress artifact shows as the words "Progress: 25%". This one shows a bar (an
inline SVG: the UI renders markdown images, and reads nothing from our folders), the count, the
time so far and an estimate of the time left.
"""

from __future__ import annotations

import base64

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


def progress_markdown(title: str, done: int, total: int, unit: str, elapsed_s: float) -> str:
    """``done`` of ``total`` ``unit`` (a plural: "pictures", "shards") after ``elapsed_s`` seconds."""
    share = done / total if total else 1.0
    line = f"**{done} of {total} {unit}** · {share:.0%} · {_duration(elapsed_s)} so far"
    if 0 < done < total:
        line += f" · about {_duration(elapsed_s / done * (total - done))} left"
    elif done >= total:
        line += " · done"
    return f"### {title}\n\n![{share:.0%}]({_bar(share)})\n\n{line}\n"
