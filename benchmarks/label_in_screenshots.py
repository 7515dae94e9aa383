"""The visible label in screenshots of a post: seen when it is shown, not seen when it is not.

    .venv/bin/python benchmarks/label_in_screenshots.py [--count 300] [--workers N]

Each picture (tests/watermark_attacks.py's unmarked ones, brought to a square post, a story or a
web banner) is shown in a screenshot of a page or a phone (``page_screenshot``, at a fifth to
half of a desktop screen's width, or across a phone's), once with the sample charter's label drawn
as exports draw it and once without. The detector looks for the label around where the watermark
was found (``label_seen_around``); here the whole screenshot is that place, which is harder on
both counts: more page to mistake for a badge, and no help from the picture's place.
"""

from __future__ import annotations

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from visuels.config import sample_charter  # noqa: E402
from visuels.inputs.charter import load_charter  # noqa: E402
from visuels.postprocess.label import draw_ai_label  # noqa: E402
from visuels.review.verify import label_seen_around  # noqa: E402

from tests.watermark_attacks import page_screenshot, unmarked_pictures  # noqa: E402

SIZES = [(1080, 1080), (1080, 1920), (1200, 628)]  # a square post, a story, a web banner


def _checked(index: int, picture: np.ndarray, share: float, phone: bool) -> tuple[bool, bool, float]:
    """(seen with the label, seen without it, seconds of the slower look)."""
    charter = load_charter(sample_charter())
    width, height = SIZES[index % len(SIZES)]
    plain = Image.fromarray(picture).resize((width, height), Image.Resampling.BICUBIC)
    labelled, _ = draw_ai_label(plain.copy(), charter, "fr")
    answers, slowest = [], 0.0
    for shown in (labelled, plain):
        page = page_screenshot(np.asarray(shown), share, phone)
        started = time.perf_counter()
        answers.append(label_seen_around(page, charter, (0, 0, page.shape[1], page.shape[0])))
        slowest = max(slowest, time.perf_counter() - started)
    return answers[0], answers[1], slowest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    pictures = unmarked_pictures(args.count, seed=91_000)
    phones = [index % 3 == 0 for index in range(args.count)]
    shares = [1.0 if phone else float(rng.uniform(0.2, 0.5)) for phone in phones]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_checked, range(args.count), pictures, shares, phones))
    seen = [result[0] for result in results]
    false_seen = [index for index, result in enumerate(results) if result[1]]
    seconds = np.array([result[2] for result in results])
    missed = [
        (index, SIZES[index % len(SIZES)], round(shares[index], 2)) for index, found in enumerate(seen) if not found
    ]
    print(f"{args.count} screenshots, {time.perf_counter() - started:.0f} s")
    print(f"label seen where shown: {sum(seen)} of {args.count}; missed (index, size, share): {missed[:20]}")
    print(f"label seen where not shown: {len(false_seen)} of {args.count} {false_seen[:20]}")
    print(f"look, slower of the two: median {np.median(seconds) * 1000:.0f} ms, max {seconds.max() * 1000:.0f} ms")


if __name__ == "__main__":
    main()
