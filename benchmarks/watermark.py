"""Watermark robustness and speed: attack x host (coded-bit accuracy, exact payload), PSNR, timings.

    .venv/bin/python benchmarks/watermark.py            # the whole table (a few minutes on one core)
    .venv/bin/python benchmarks/watermark.py --quick    # two hosts

Hosts are real chain outputs (label, logo, commune name drawn on them) at 1080x1080, 1080x1350
and 1920x1080, from: a charter illustration, 1/f noise (natural-image statistics), the sample's
stand-in photo of Sète's harbour, a demo-model picture, and white noise blown up 5.7x (a worst
case, far busier than any real picture).
Attacks: tests/watermark_attacks.py. "bits" is the share of the 204 coded bits read right where
the sync pattern is strongest, on the picture as it is (no rotation search); "exact" is what
``detect`` decides, the whole search included: the exact 64-bit payload, CRC-checked.
Timings: one thread, 1080x1080, median of 15.
"""

from __future__ import annotations

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
KEY = 0x9E3779B97F4A7C15F39CC0605CEDC834  # a full 128-bit key, as `visuels keys init` makes (fixed: runs compare)
sys.path.insert(0, str(REPO))

from visuels._internal.payload_code import coded_bits  # noqa: E402
from visuels.inputs.charter import load_charter  # noqa: E402
from visuels.marking.watermark import best_guess_bits, detect, embed  # noqa: E402

from tests.watermark_attacks import (  # noqa: E402
    ATTACKS,
    REFERENCES,
    SAMPLE_CHARTER_DIR,
    centre_crop,
    chain_output,
    encode,
    pink_noise,
    psnr,
    resize,
    rotate,
)

PAYLOAD = 0x0123456789ABCDEF


def demo_picture() -> Image.Image:
    import torch
    from visuels._internal.logs import quiet_third_party_logs
    from visuels.inputs.model_refs import DemoModelRef
    from visuels.models.host import ModelHost

    quiet_third_party_logs()
    generator = torch.Generator().manual_seed(7)
    with ModelHost(torch.device("cpu")).use(DemoModelRef(), torch.float32, None) as pipeline:
        return pipeline("a village by the sea", num_inference_steps=20, generator=generator).images[0]


def hosts(quick: bool) -> dict[str, np.ndarray]:
    charter = load_charter(REPO / "brand_assets" / "solane")
    found = {
        "illustration 1080²": chain_output(charter, Image.open(REFERENCES[1]), 1080, 1080),
        "1/f noise 1920x1080": chain_output(charter, pink_noise(1080, 1920, seed=4), 1920, 1080),
    }
    if not quick:
        photo = Image.open(SAMPLE_CHARTER_DIR / "photos" / "34301-sete" / "stand-in-harbour.jpg")
        found["photo 1080x1350"] = chain_output(charter, photo, 1080, 1350)
        white = Image.fromarray(np.random.default_rng(4).integers(0, 256, (192, 336, 3), dtype=np.uint8))
        found["demo model 1080²"] = chain_output(charter, demo_picture(), 1080, 1080)
        found["white noise x5.7 1920x1080"] = chain_output(charter, white, 1920, 1080)
    return found


def table(pictures: dict[str, np.ndarray]) -> dict[str, list[str]]:
    """Print attack x host; return the hosts each attack's exact payload was lost on."""
    truth = coded_bits(PAYLOAD).astype(bool)
    marked = {name: embed(image, PAYLOAD, KEY) for name, image in pictures.items()}
    print("PSNR:", ", ".join(f"{name} {psnr(pictures[name], image):.1f} dB" for name, image in marked.items()))
    width = 24
    print(f"\n{'attack':<52}" + "".join(f"{name[: width - 2]:>{width}}" for name in pictures))
    print(f"{'':<52}" + "".join(f"{'bits   exact':>{width}}" for _ in pictures))
    survived: dict[str, list[str]] = {}
    for attack, function in ATTACKS.items():
        cells, lost = [], []
        for name, image in marked.items():
            attacked = function(image)
            accuracy = (best_guess_bits(attacked, KEY) == truth).mean()
            found = detect(attacked, KEY)
            exact = found.payload == PAYLOAD
            if not exact:
                lost.append(name)
            how = ""
            if exact and (found.flipped or found.rotation):
                how = " (flipped)" if found.flipped else f" ({found.rotation:+.1f}°)"
            cells.append(f"{accuracy:>8.1%} {('yes' if exact else 'NO') + how:>{width - 9}}")
        survived[attack] = lost
        print(f"{attack:<52}" + "".join(cells))
    return survived


# How far each attack goes before the payload is lost: (label, levels from mild to harsh, attack).
LIMITS = [
    ("rotation, cropped to fill (degrees)", [10, 12.5, 15, 17.5, 20], lambda image, level: rotate(image, level)),
    (
        "centre crop (share of the area kept)",
        [0.25, 0.16, 0.12, 0.09],
        lambda image, level: centre_crop(image, (1 - level**0.5) / 2),
    ),
    ("JPEG 4:2:0 (quality)", [20, 15, 10, 5], lambda image, level: encode(image, "JPEG", quality=level, subsampling=2)),
    ("resize (factor)", [0.33, 0.25, 0.2, 0.15], lambda image, level: resize(image, level)),
    (
        "Gaussian blur (σ, pixels)",
        [1.5, 2.0, 2.5, 3.0, 4.0],
        lambda image, level: cv2.GaussianBlur(image, (0, 0), level),
    ),
]


def limits(pictures: dict[str, np.ndarray]) -> None:
    """For each host and payload, the harshest level of each attack up to which every level read the
    exact payload ('-': not even the mildest)."""
    print("\nlimits: the harshest level up to which every level is exact, per payload (two payloads)")
    print(f"  {'':<40}" + "".join(f"{name[:22]:>24}" for name in pictures))
    payloads = (PAYLOAD, 0xC0FFEE05EAB10B05)
    for label, levels, attack in LIMITS:
        cells = []
        for image in pictures.values():
            reached = []
            for payload in payloads:
                marked = embed(image, payload, KEY)
                last = "-"
                for level in levels:
                    if detect(attack(marked, level), KEY).payload != payload:
                        break
                    last = str(level)
                reached.append(last)
            cells.append(" / ".join(reached))
        print(f"  {label:<40}" + "".join(f"{cell:>24}" for cell in cells))


def timings(image: np.ndarray) -> None:
    embed_times, detect_times, unmarked_times = [], [], []
    for _ in range(15):
        started = time.perf_counter()
        marked_image = embed(image, PAYLOAD, KEY)
        embed_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        detect(marked_image, KEY)
        detect_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        detect(image, KEY)
        unmarked_times.append(time.perf_counter() - started)
    embed_ms, detect_ms = statistics.median(embed_times) * 1000, statistics.median(detect_times) * 1000
    print(f"\n1080x1080, one thread: embed {embed_ms:.1f} ms, detect (marked) {detect_ms:.1f} ms,")
    print(f"embed + detect {embed_ms + detect_ms:.1f} ms; detect on an unmarked picture (the whole search)")
    print(f"{statistics.median(unmarked_times) * 1000:.1f} ms")
    turned = ATTACKS["rotate +3° crop"](embed(image, PAYLOAD, KEY))
    started = time.perf_counter()
    detect(turned, KEY)
    print(f"detect after a 3° turn and crop: {(time.perf_counter() - started) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two hosts only")
    parser.add_argument("--limits-only", action="store_true", help="only how far each attack goes")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    pictures = hosts(args.quick)
    if args.limits_only:
        limits(pictures)
        return
    lost = table(pictures)
    print()
    for host in pictures:
        missed = [attack for attack, hosts_lost in lost.items() if host in hosts_lost]
        print(
            f"{host}: exact after {len(lost) - len(missed)} of {len(lost)}"
            + (f"; lost: {', '.join(missed)}" if missed else "")
        )
    limits(pictures)
    timings(pictures["illustration 1080²"])


if __name__ == "__main__":
    main()
