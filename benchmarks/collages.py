"""Marked pictures in a collage: side by side, stacked, in a grid of four or nine.

    .venv/bin/python benchmarks/collages.py [--unmarked N] [--workers N]

A newsletter shows two of a campaign's pictures side by side, a profile's grid shows nine, someone
posts four of them as one picture. Each picture's mark is whole, but the search over the whole
upload folds the four or nine different marks together and reads none. The sample charter's
references are marked (each with its own payload, as exports are), laid out 1,080 px wide with no
gutter or an 8 px white one, saved as JPEG q85, and the watermark sought: found when the payload
read is one of theirs. ``--unmarked N``: instead, N collages of unmarked pictures (tests/
watermark_attacks.py's, in every layout): false payloads, decodings, and the time one costs.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
KEY = 0x9E3779B97F4A7C15F39CC0605CEDC834  # fixed: runs compare
WIDTH = 1080
# Each layout: (columns' shares of the width, rows); every cell square but those of "60/40".
LAYOUTS = {
    "side by side": ((0.5, 0.5), 1),
    "side by side, 60/40": ((0.6, 0.4), 1),
    "stacked": ((1.0,), 2),
    "grid of 4": ((0.5, 0.5), 2),
    "grid of 9": ((1 / 3, 1 / 3, 1 / 3), 3),
}
GUTTERS = (0, 8)
sys.path.insert(0, str(REPO))

from visuels.marking.watermark import MAX_ATTEMPTS, detect, embed_readable  # noqa: E402

from tests.watermark_attacks import REFERENCES, encode, unmarked_pictures  # noqa: E402


def collage(pictures: list[np.ndarray], layout: str, gutter: int) -> np.ndarray:
    """``pictures`` (at least as many as cells) laid out on white, as JPEG q85."""
    shares, rows = LAYOUTS[layout]
    widths = [round(WIDTH * share) for share in shares]
    height = (widths[0] if len(widths) > 1 else WIDTH // rows) * rows
    if layout == "stacked":
        widths = [WIDTH // rows]
    canvas = np.full((height, sum(widths), 3), 255, np.uint8)
    cells = iter(pictures)
    top = 0
    cell_height = height // rows
    for _ in range(rows):
        left = 0
        for cell_width in widths:
            shown = Image.fromarray(next(cells)).resize(
                (cell_width - 2 * gutter, cell_height - 2 * gutter), Image.Resampling.LANCZOS
            )
            canvas[top + gutter : top + cell_height - gutter, left + gutter : left + cell_width - gutter] = shown
            left += cell_width
        top += cell_height
    return encode(canvas, "JPEG", quality=85)


def _unmarked_collage(pictures: list[np.ndarray], layout: str, gutter: int) -> tuple[bool, int, float]:
    """(a payload found, decodings made, seconds) for a collage of unmarked pictures."""
    upload = collage(pictures, layout, gutter)
    started = time.perf_counter()
    found = detect(upload, KEY)
    return found.payload is not None, found.attempts, time.perf_counter() - started


def false_positives(count: int, workers: int) -> None:
    pictures = unmarked_pictures(count * 9, seed=77_000)
    layouts = [list(LAYOUTS)[index % len(LAYOUTS)] for index in range(count)]
    gutters = [GUTTERS[index // len(LAYOUTS) % len(GUTTERS)] for index in range(count)]
    groups = [pictures[index * 9 : index * 9 + 9] for index in range(count)]
    started = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_unmarked_collage, groups, layouts, gutters))
    attempts = np.array([result[1] for result in results])
    seconds = np.array([result[2] for result in results])
    print(f"{count} collages of unmarked pictures, {time.perf_counter() - started:.0f} s on {workers} workers")
    print(f"false payloads: {sum(result[0] for result in results)}")
    print(f"decodings: at most {attempts.max()} (bound {MAX_ATTEMPTS}), mean {attempts.mean():.1f}")
    print(f"per collage: median {np.median(seconds) * 1000:.0f} ms, max {seconds.max() * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unmarked", type=int, default=0, help="false positives on this many unmarked collages")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if args.unmarked:
        false_positives(args.unmarked, args.workers)
        return
    payloads = [0x0123456789ABCDEF + 7919 * index for index in range(9)]
    marked = []
    for index, payload in enumerate(payloads):
        with Image.open(REFERENCES[index % len(REFERENCES)]) as reference:
            picture = np.asarray(reference.convert("RGB").resize((1080, 1080), Image.Resampling.LANCZOS))
        marked.append(embed_readable(picture, payload, KEY)[0])
    print("| layout | gutter | found | seconds |")
    print("|---|---|---|---|")
    for layout in LAYOUTS:
        for gutter in GUTTERS:
            upload = collage(marked, layout, gutter)
            started = time.perf_counter()
            found = detect(upload, KEY).payload in payloads
            shape = f"{upload.shape[1]}x{upload.shape[0]}"
            seconds = time.perf_counter() - started
            print(f"| {layout} ({shape}) | {gutter} px | {'found' if found else 'not found'} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
