"""False positives of the invisible watermark: detect on 10,000 unmarked pictures, none may decode.

    .venv/bin/python benchmarks/watermark_false_positives.py [--count 10000] [--workers N] [--pages]

The pictures are tests/watermark_attacks.py's unmarked ones (illustrations recoloured and
cropped, 1/f noise, white noise, gradients, flat colour, stripes and checkerboards, screenshots
of text, photos drawn by code), from another seed than the test's 1,000. By construction a
picture gets at most MAX_ATTEMPTS CRC-32-checked decodings, so at most MAX_ATTEMPTS x 2^-32
false positives per picture; this counts them, and the attempts made, and times the search.
``--pages``: each picture shown in a screenshot of a page or a phone (tests/watermark_attacks.py's
``page_screenshot``, at a fifth to half of the screen's width), where the places a picture may sit
are searched too (visuels.marking.framing).
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

REPO = Path(__file__).resolve().parents[1]
KEY = 0x9E3779B97F4A7C15F39CC0605CEDC834  # a full 128-bit key, as `visuels keys init` makes (fixed: runs compare)
sys.path.insert(0, str(REPO))

from visuels.marking.watermark import MAX_ATTEMPTS, Detection, detect  # noqa: E402

from tests.watermark_attacks import page_screenshot, unmarked_pictures  # noqa: E402

BATCH = 500  # pictures made and checked at a time: memory stays small


def _timed_detect(picture: np.ndarray) -> tuple[Detection, float]:
    started = time.perf_counter()
    found = detect(picture, KEY)
    return found, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--pages", action="store_true", help="each picture in a screenshot of a page")
    args = parser.parse_args()
    found, attempts, seconds = [], [], []
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for batch in range(0, args.count, BATCH):
            # Each batch its own seed, so any batch can be made again alone to look at a finding.
            pictures = unmarked_pictures(min(BATCH, args.count - batch), seed=77_000 + batch)
            if args.pages:
                shares = np.random.default_rng(batch).uniform(0.2, 0.5, len(pictures))
                pictures = [
                    page_screenshot(picture, 1.0 if index % 4 == 3 else float(share), phone=index % 4 == 3)
                    for index, (picture, share) in enumerate(zip(pictures, shares, strict=True))
                ]
            for index, (detection, elapsed) in enumerate(pool.map(_timed_detect, pictures, chunksize=10)):
                attempts.append(detection.attempts)
                seconds.append(elapsed)
                if detection.payload is not None:
                    found.append((batch + index, f"{detection.payload:016x}"))
            print(f"{batch + len(pictures):>6} pictures, {len(found)} payload(s) found", flush=True)
    total = time.perf_counter() - started
    print(f"\n{args.count} unmarked pictures, {args.workers} worker(s), {total:.0f} s")
    print(f"payloads found: {len(found)} {found[:10]}")
    print(f"decodings per picture: max {max(attempts)} (bound {MAX_ATTEMPTS}), mean {np.mean(attempts):.1f}")
    print(f"bound on the false-positive rate: {MAX_ATTEMPTS} x 2^-32 = {MAX_ATTEMPTS * 2.0**-32:.1e} per picture")
    kind = "pages" if args.pages else "200-400 px"
    median, longest = np.median(seconds) * 1000, max(seconds) * 1000
    print(f"detect per picture ({kind}): median {median:.0f} ms, max {longest:.0f} ms")


if __name__ == "__main__":
    main()
