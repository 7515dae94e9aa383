"""The progress artifact's markdown: a drawn bar, the count, the time so far and left."""

import base64
import re

from visuels.flows.artifacts.progress_view import BAR_WIDTH, progress_markdown


def _filled_width(markdown: str) -> int:
    encoded = re.search(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", markdown)
    assert encoded is not None
    svg = base64.b64decode(encoded.group(1)).decode()
    widths = [int(width) for width in re.findall(r'<rect width="(\d+)"', svg)]
    assert widths[0] == BAR_WIDTH
    return widths[1]


def test_the_bar_the_count_and_the_estimate_follow_the_work_done() -> None:
    start = progress_markdown("Été 2027", 0, 48, "pictures", 3)
    assert _filled_width(start) == 0 and "**0 of 48 pictures** · 0% · 3 s so far" in start and "left" not in start
    quarter = progress_markdown("Été 2027", 12, 48, "pictures", 90)
    assert _filled_width(quarter) == BAR_WIDTH // 4
    assert "**12 of 48 pictures** · 25% · 1 min 30 s so far · about 4 min 30 s left" in quarter
    done = progress_markdown("Été 2027", 48, 48, "pictures", 3 * 3600 + 125)
    assert _filled_width(done) == BAR_WIDTH and "3 h 02 min so far · done" in done
    assert progress_markdown("Rien", 0, 0, "pictures", 1).count("done") == 1  # nothing to do is done
