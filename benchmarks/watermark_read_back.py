"""How strongly each picture has to be marked for its watermark to read back, on busy pictures.

    .venv/bin/python benchmarks/watermark_read_back.py [--keys 20]

Every export marks its picture, reads the mark back where it was put, and marks again more
strongly while it does not come back (``visuels.marking.watermark.embed_readable``). Hosts are
real chain outputs (label, logo, commune name drawn on them) from colour noise blown up by 4 and 8
times (nearest and Lanczos, as a model with random weights and a small VAE draws at 128-256 px and
the formats blow up), 1/f noise (natural-picture statistics) and a charter illustration. Each
host is marked under ``--keys`` random keys and payloads. For each host: how many pictures read
back at each strength (all over + extra where busy), and how many at none; for those that did,
the PSNR of the marked picture, and whether ``detect`` (the whole search) finds the payload as
exported in PNG and in JPEG at the exports' quality.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from visuels.inputs.charter import load_charter  # noqa: E402
from visuels.marking.mark import LOSSY_QUALITY  # noqa: E402
from visuels.marking.watermark import detect, embed_readable  # noqa: E402

from tests.watermark_attacks import (  # noqa: E402
    REFERENCES,
    blown_up_noise,
    chain_output,
    encode,
    pink_noise,
    psnr,
)


def hosts() -> dict[str, np.ndarray]:
    charter = load_charter(REPO / "brand_assets" / "solane")
    found = {}
    # At 1024 px, blocks of 8 fall on the canonical grid's chips exactly: the worst case.
    for side in (1024, 1080):
        for resample in (Image.Resampling.NEAREST, Image.Resampling.LANCZOS):
            source = blown_up_noise(side, 8, seed=side, resample=resample)
            found[f"noise x8 {resample.name.title()} {side}²"] = chain_output(charter, source, side, side)
    lanczos = blown_up_noise(1080, 4, seed=3, resample=Image.Resampling.LANCZOS)
    found["noise x4 Lanczos 1080²"] = chain_output(charter, lanczos, 1080, 1080)
    found["1/f noise 1080²"] = chain_output(charter, pink_noise(1080, 1080, seed=4), 1080, 1080)
    found["illustration 1080²"] = chain_output(charter, Image.open(REFERENCES[1]), 1080, 1080)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    print(f"{args.keys} random keys and payloads per host; JPEG at quality {LOSSY_QUALITY}")
    print("| host | read back at (all over + busy) | none | PSNR dB (min-max) | detect PNG | detect JPEG |")
    print("|---|---|---|---|---|---|")
    for name, picture in hosts().items():
        strengths: Counter[str] = Counter()
        psnrs, png_found, jpeg_found = [], 0, 0
        for _ in range(args.keys):
            key, payload = int(rng.integers(1, 2**63)) << 64 | int(rng.integers(0, 2**63)), int(rng.integers(0, 2**63))
            marked, strength = embed_readable(picture, payload, key)
            if strength is None:
                strengths["none"] += 1
                continue
            overall, busy = strength
            strengths[f"{overall:g}" + (f"+{busy:g}" if busy else "")] += 1
            psnrs.append(psnr(picture, marked))
            png_found += detect(marked, key).payload == payload
            jpeg_found += detect(encode(marked, "JPEG", quality=LOSSY_QUALITY), key).payload == payload
        read = args.keys - strengths["none"]
        shares = ", ".join(f"{label}: {count}" for label, count in sorted(strengths.items()) if label != "none")
        span = f"{min(psnrs):.1f}-{max(psnrs):.1f}" if psnrs else "-"
        print(f"| {name} | {shares} | {strengths['none']} | {span} | {png_found}/{read} | {jpeg_found}/{read} |")


if __name__ == "__main__":
    main()
