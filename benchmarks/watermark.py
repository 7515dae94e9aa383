"""Watermark robustness and speed: attack x bit accuracy x exact payload, and timings.

    .venv/bin/python benchmarks/watermark.py

Hosts are real chain outputs (label, logo, commune name drawn on them) at 1080x1080 and
1920x1080, from: a charter illustration, 1/f noise (natural-image statistics), a demo-model
picture, and white noise blown up 5.7x (a worst case, far busier than any real picture).
Timings: one thread, 1080x1080, median of 15.
"""

from __future__ import annotations

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"

import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.charter import load_charter  # noqa: E402
from pipelines.marking.watermark import best_guess_bits, coded_bits, detect, embed  # noqa: E402
from tests.test_watermark import ATTACKS, REFERENCES, chain_output, pink_noise, psnr  # noqa: E402

PAYLOAD = 0x0123456789ABCDEF


def demo_picture() -> Image.Image:
    import torch

    from pipelines.model_host import ModelHost
    from pipelines.model_reference import DemoModelRef
    from pipelines.third_party_logs import quiet_third_party_logs

    quiet_third_party_logs()
    pipeline = ModelHost(torch.device("cpu")).pipeline(DemoModelRef(), torch.float32, None)
    generator = torch.Generator().manual_seed(7)
    return pipeline("a village by the sea", num_inference_steps=20, generator=generator).images[0]


def main() -> None:
    cv2.setNumThreads(1)
    charter = load_charter(REPO / "brand_assets" / "solane")
    white = Image.fromarray(np.random.default_rng(4).integers(0, 256, (192, 336, 3), dtype=np.uint8))
    hosts = {
        "illustration 1080²": chain_output(charter, Image.open(REFERENCES[1]), 1080, 1080),
        "1/f noise 1920x1080": chain_output(charter, pink_noise(1080, 1920, seed=4), 1920, 1080),
        "demo model 1080²": chain_output(charter, demo_picture(), 1080, 1080),
        "white noise x5.7 1920x1080": chain_output(charter, white, 1920, 1080),
    }
    truth = coded_bits(PAYLOAD)
    marked = {name: embed(image, PAYLOAD) for name, image in hosts.items()}
    print("PSNR:", ", ".join(f"{name} {psnr(hosts[name], image):.1f} dB" for name, image in marked.items()))
    header = "".join(f"{name[:22]:>26}" for name in hosts)
    print(f"\n{'attack':<22}{header}\n{'':<22}" + "".join(f"{'bit acc.  exact':>26}" for _ in hosts))
    for attack, function in ATTACKS.items():
        cells = []
        for image in marked.values():
            attacked = function(image)
            accuracy = (best_guess_bits(attacked) == truth).mean()
            exact = detect(attacked).payload == PAYLOAD
            cells.append(f"{accuracy:>15.1%}{'yes' if exact else 'NO':>11}")
        print(f"{attack:<22}" + "".join(cells))

    image = hosts["illustration 1080²"]
    embed_times, detect_times, unmarked_times = [], [], []
    for _ in range(15):
        started = time.perf_counter()
        marked_image = embed(image, PAYLOAD)
        embed_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        detect(marked_image)
        detect_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        detect(image)
        unmarked_times.append(time.perf_counter() - started)
    embed_ms, detect_ms = statistics.median(embed_times) * 1000, statistics.median(detect_times) * 1000
    print(f"\n1080x1080, one thread: embed {embed_ms:.1f} ms, detect (marked) {detect_ms:.1f} ms,")
    print(f"embed + detect {embed_ms + detect_ms:.1f} ms; detect on an unmarked picture (every attempt)")
    print(f"{statistics.median(unmarked_times) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
