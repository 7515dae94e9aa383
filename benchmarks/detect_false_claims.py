"""`visuels detect` on pictures from elsewhere: how many it would claim as this deployment's.

    .venv/bin/python benchmarks/detect_false_claims.py            # 1,000 pictures (about 15 min on 2 cores)
    .venv/bin/python benchmarks/detect_false_claims.py --count 100

The pictures are those of the watermark's false-positive guard (tests/watermark_attacks.py:
illustrations recoloured and cropped, 1/f noise, white noise, gradients, flat colours, stripes and
checkerboards, text screenshots, photos drawn by code), written as PNG, JPEG and WebP in turn and
read back by ``detect_file`` exactly as the command does, with a keys folder of its own: a local
signing chain, two secret watermark keys (one rotated out) and the demo key, all tried. Counted:
verdicts "marked" (a false claim), and each mark found on its own (a watermark payload, a label).
"""

from __future__ import annotations

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"

import argparse  # noqa: E402
import collections  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.watermark_attacks import SAMPLE_CHARTER_DIR, unmarked_pictures  # noqa: E402

FORMATS = ("PNG", "JPEG", "WEBP")


def _detect(path: str) -> tuple[str, list[str]]:
    from visuels.inputs.charter import load_charter
    from visuels.marking.keys import TRUST_ANCHORS, keys_dir
    from visuels.review.detect import detect_file

    detection = detect_file(Path(path), load_charter(SAMPLE_CHARTER_DIR), keys_dir() / TRUST_ANCHORS)
    return detection.verdict, [name for name, mark in detection.marks.items() if mark.found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        from visuels.marking.keys import init_local_chain
        from visuels.marking.watermark_keys import add_key, known_keys

        keys = Path(folder) / "keys"
        init_local_chain(keys)
        add_key(keys)  # rotated: the first key still detects
        os.environ["VISUELS_KEYS_DIR"] = str(keys)
        os.environ.pop("VISUELS_WATERMARK_KEY", None)
        print("keys tried:", ", ".join(key.id for key in known_keys(keys)))
        paths = []
        for number, picture in enumerate(unmarked_pictures(args.count, seed=4242)):
            kind = FORMATS[number % len(FORMATS)]
            path = Path(folder) / f"{number:04d}.{kind.lower()}"
            Image.fromarray(picture).save(path, kind, **({} if kind == "PNG" else {"quality": 90}))
            paths.append(str(path))
        started = time.perf_counter()
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(os.cpu_count() or 1, mp_context=context) as pool:
            results = list(pool.map(_detect, paths, chunksize=8))
        seconds = time.perf_counter() - started
    claims = [path for path, (verdict, _) in zip(paths, results, strict=True) if verdict == "marked"]
    found = collections.Counter(name for _, marks in results for name in marks)
    print(f"{len(results)} pictures from elsewhere, {seconds:.0f} s on {os.cpu_count()} processes")
    print(f"claimed as this deployment's: {len(claims)}" + (f" ({', '.join(claims)})" if claims else ""))
    print("marks found on their own:", dict(found) or "none")


if __name__ == "__main__":
    main()
