"""Median time of the post-processing chain per output, on one core.

    .venv/bin/python benchmarks/postprocess.py [--repeats 20]

The chain is the one the flow runs (content-aware crop and resize, palette grading and scores,
label, logo, commune name and headline, compliance check), from a picture at the demo model's
generation size to each format. Two inputs: a sample reference picture (flat illustration) and
random noise (the worst case: busiest corners, a backing plate behind the text). PNG encoding
is export, not post-processing, and is timed by benchmarks/demo.py.
"""

from __future__ import annotations

import os

# One core: pin every thread pool before numpy and OpenCV start theirs.
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from importlib.metadata import version  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from visuels.inputs.charter import load_charter  # noqa: E402
from visuels.inputs.formats import FORMAT_PRESETS  # noqa: E402
from visuels.postprocess.chain import postprocess  # noqa: E402
from visuels.postprocess.compliance import assess  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGET_MS_1080 = 150
CASES = [("instagram_square", (256, 256)), ("web_banner", (336, 192)), ("poster_a3", (208, 304))]


def time_chain(source: Image.Image, format_name: str, repeats: int) -> list[float]:
    charter = load_charter(REPO / "brand_assets" / "solane")
    preset = FORMAT_PRESETS[format_name]
    name, headline = "Castelnau-d'Estrétefonds", "Vivre en Solane, l'été"
    assess(postprocess(source, charter, preset.width, preset.height, "fr", name, headline), charter)  # warm caches
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = postprocess(source, charter, preset.width, preset.height, "fr", name, headline)
        assess(result, charter)
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    print(f"machine: {platform.machine()}, python {platform.python_version()}, one thread")
    print(f"numpy {np.__version__}, opencv {cv2.__version__}, pillow {version('pillow')}")
    reference = Image.open(REPO / "brand_assets" / "solane" / "references" / "12-hills-village-sea.png").convert("RGB")
    rng = np.random.default_rng(0)
    print(f"\n{'format':<18}{'size':>11}{'input':>11}{'median ms':>11}{'min ms':>8}")
    for format_name, generated in CASES:
        preset = FORMAT_PRESETS[format_name]
        inputs = {
            "reference": reference.resize(generated, Image.Resampling.LANCZOS),
            "noise": Image.fromarray(rng.integers(0, 256, (generated[1], generated[0], 3), dtype=np.uint8)),
        }
        for label, source in inputs.items():
            seconds = time_chain(source, format_name, args.repeats)
            median = statistics.median(seconds) * 1000
            size = f"{preset.width}x{preset.height}"
            print(f"{format_name:<18}{size:>11}{label:>11}{median:>11.1f}{min(seconds) * 1000:>8.1f}")
    print(f"\ntarget for 1080x1080: <= {TARGET_MS_1080} ms")


if __name__ == "__main__":
    main()
