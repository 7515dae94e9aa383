"""A marked poster photographed in the street: the whole photograph, and the photograph cropped to it.

    .venv/bin/python benchmarks/poster_photographs.py

A marked 1080x1080 picture (the sample charter's references, marked as exports mark them) is
pasted into a 4032x2268 photograph (a phone's, 1/f noise for the street around it: tests/
watermark_attacks.py's ``street_photograph``) at a fifth to nearly half of its width, turned away
by a keystone (one side shorter by 0-10 % of the width; ``--from-below S``: its top shorter too, by
S of the width at each end, as a poster high on a wall), saved as JPEG q85. The watermark is
sought in the whole photograph, then in the photograph cropped to the poster's box, as a person
does with a phone's photo editor before sending it. ``--unmarked N``: instead, N unmarked
pictures so photographed (at random sizes and keystones): false payloads, and the time a
photograph with no mark costs; ``--keys K`` searches each with a ring of K keys, as the detector
tries a deployment's keys and the demo key (``find_mark``).
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
PAYLOAD = 0x0123456789ABCDEF
SHARES = (0.2, 0.3, 0.45)
KEYSTONES = (0.0, 0.03, 0.06, 0.1)
sys.path.insert(0, str(REPO))

from visuels.marking.watermark import MAX_ATTEMPTS, detect, embed_readable  # noqa: E402
from visuels.marking.watermark_keys import WatermarkKey, find_mark  # noqa: E402

from tests.watermark_attacks import REFERENCES, street_photograph, unmarked_pictures  # noqa: E402


def _unmarked_photograph(picture: np.ndarray, share: float, keystone: float, keys: int) -> tuple[bool, int, float]:
    """(a payload found, decodings made with the first key, seconds) for an unmarked picture photographed."""
    photo, _ = street_photograph(picture, share, keystone)
    ring = [WatermarkKey(id=f"wk-{number}", value=KEY + number) for number in range(keys)]
    started = time.perf_counter()
    found = detect(photo, KEY) if keys == 1 else find_mark(photo, ring)[0]
    return found.payload is not None, found.attempts, time.perf_counter() - started


def false_positives(count: int, keys: int, workers: int) -> None:
    rng = np.random.default_rng(4032)
    shares = rng.uniform(0.15, 0.6, count)
    keystones = rng.uniform(0.0, 0.1, count)
    started = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pictures = unmarked_pictures(count, seed=55_000)
        results = list(pool.map(_unmarked_photograph, pictures, shares, keystones, [keys] * count))
    attempts = np.array([result[1] for result in results])
    seconds = np.array([result[2] for result in results])
    print(f"{count} unmarked pictures photographed, {time.perf_counter() - started:.0f} s on {workers} workers")
    print(f"false payloads: {sum(result[0] for result in results)}, searched with {keys} key(s) each")
    print(f"decodings per key: at most {attempts.max()} (bound {MAX_ATTEMPTS}), mean {attempts.mean():.1f}")
    print(f"per photograph: median {np.median(seconds) * 1000:.0f} ms, max {seconds.max() * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unmarked", type=int, default=0, help="false positives on this many unmarked pictures")
    parser.add_argument("--keys", type=int, default=1, help="with --unmarked: keys tried on each, as the detector does")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--from-below", type=float, default=0.0, help="the poster seen from below too: its top shorter by this share"
    )
    args = parser.parse_args()
    if args.unmarked:
        false_positives(args.unmarked, args.keys, args.workers)
        return
    with Image.open(REFERENCES[0]) as reference:
        picture = np.asarray(reference.convert("RGB").resize((1080, 1080), Image.Resampling.LANCZOS))
    poster, _ = embed_readable(picture, PAYLOAD, KEY)
    print("| poster's share of the width | keystone | whole photograph | cropped to the poster | seconds |")
    print("|---|---|---|---|---|")
    for share in SHARES:
        for keystone in KEYSTONES:
            photo, (left, top, right, bottom) = street_photograph(poster, share, keystone, from_below=args.from_below)
            started = time.perf_counter()
            whole = detect(photo, KEY).payload == PAYLOAD
            middle = time.perf_counter()
            cropped = detect(np.ascontiguousarray(photo[top:bottom, left:right]), KEY).payload == PAYLOAD
            ended = time.perf_counter()
            print(
                f"| {share:.0%} | {keystone:.0%} | {'found' if whole else 'not found'} |"
                f" {'found' if cropped else 'not found'} | {middle - started:.1f}, {ended - middle:.1f} |"
            )


if __name__ == "__main__":
    main()
