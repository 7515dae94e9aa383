"""The watermark against the attacks the Code of Practice names (Measure 3.3): detection rate and PSNR.

    .venv/bin/python benchmarks/watermark_code_attacks.py          # all (a few minutes on one core)
    .venv/bin/python benchmarks/watermark_code_attacks.py --quick  # no regeneration

Categories: a screenshot (rescaled inside a browser-like frame, re-encoded; or a post on a page,
the picture a fifth to a third of the screen's width with text around it), print-and-scan
(enlarged, a perspective warp, blur, halftone-like dots and noise, a colour shift, JPEG, back to
size), local blurring and inpainting over part of the picture, regeneration by img2img at
strengths 0.1 to 0.5 (the demo model: random weights, so its VAE and UNet are not a real model's;
what a full-size model's regeneration does needs a GPU and real weights, not measured here), and an
averaging attack (the pattern estimated from many pictures marked with one key, subtracted from
another marked picture, added to a clean one).

Hosts: four chain outputs (label, logo, commune name drawn on them), as benchmarks/watermark.py.
"detected": the exact 64-bit payload, CRC-checked; PSNR of the attacked picture against the marked
one, where the attack keeps the picture's geometry ("-" where it does not: a PSNR means nothing
there). Key: the demo key, as the other
watermark benchmarks (robustness varies a little from key to key: RESULTS.md).
"""

from __future__ import annotations

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from visuels.inputs.charter import load_charter  # noqa: E402
from visuels.marking.watermark import detect, embed  # noqa: E402
from visuels.marking.watermark_keys import DEMO_KEY  # noqa: E402

from tests.watermark_attacks import (  # noqa: E402
    REFERENCES,
    SAMPLE_CHARTER_DIR,
    chain_output,
    encode,
    page_screenshot,
    pink_noise,
    psnr,
    unmarked_pictures,
)

KEY = DEMO_KEY
PAYLOAD = 0x5EA5_1DE0_2027_C0DE
AVERAGED = 40  # pictures the averaging attacker collects


def hosts() -> dict[str, np.ndarray]:
    charter = load_charter(SAMPLE_CHARTER_DIR)
    photo = Image.open(SAMPLE_CHARTER_DIR / "photos" / "34301-sete" / "stand-in-harbour.jpg")
    return {
        "illustration 1080²": chain_output(charter, Image.open(REFERENCES[1]), 1080, 1080),
        "illustration 1080x1350": chain_output(charter, Image.open(REFERENCES[5]), 1080, 1350),
        "1/f noise 1920x1080": chain_output(charter, pink_noise(1080, 1920, seed=4), 1920, 1080),
        "photo 1080x1350": chain_output(charter, photo, 1080, 1350),
    }


def _sized(image: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``image`` at the size of ``like`` (a regenerated picture comes back at the model's size)."""
    height, width = like.shape[:2]
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def screenshot(image: np.ndarray, scale: float = 0.8, quality: int = 85) -> np.ndarray:
    """Shown at ``scale`` in a browser (bilinear), captured with the window's frame, saved as JPEG."""
    height, width = image.shape[:2]
    shown = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_LINEAR)
    frame = np.full((shown.shape[0] + 120, shown.shape[1] + 60, 3), 242, np.uint8)  # page background
    frame[:72] = (222, 225, 230)  # tabs and address bar
    cv2.rectangle(frame, (90, 20), (frame.shape[1] - 90, 52), (255, 255, 255), -1)
    frame[:, -14:] = (200, 200, 200)  # scroll bar
    frame[96 : 96 + shown.shape[0], 24 : 24 + shown.shape[1]] = shown
    return encode(frame, "JPEG", quality=quality)


def print_and_scan(image: np.ndarray, seed: int = 0) -> np.ndarray:
    """Printed (halftone-like dots, ink gain) then scanned (a slight perspective, blur, noise, a
    colour cast, JPEG), then brought back to its size."""
    rng = np.random.default_rng(seed)
    height, width = image.shape[:2]
    big = cv2.resize(image, (width * 3 // 2, height * 3 // 2), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    rows, columns = np.mgrid[0 : big.shape[0], 0 : big.shape[1]]
    dots = 6 * np.sin(rows * 2 * np.pi / 5.0) * np.sin(columns * 2 * np.pi / 5.0)  # a 45°-less halftone screen
    printed = np.clip(big * 0.92 + 10 + dots[..., None], 0, 255)  # ink gain: darker, paper white lifted
    corners = np.float32([[0, 0], [big.shape[1], 0], [big.shape[1], big.shape[0]], [0, big.shape[0]]])
    moved = corners + rng.uniform(-0.012, 0.012, corners.shape).astype(np.float32) * np.float32(big.shape[1::-1])
    warp = cv2.getPerspectiveTransform(corners, moved)
    scanned = cv2.warpPerspective(printed, warp, big.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
    scanned = cv2.GaussianBlur(scanned, (0, 0), 1.2) + rng.normal(0, 4, scanned.shape)
    scanned = np.clip(scanned * np.float32([1.04, 1.0, 0.93]), 0, 255)  # a warm cast
    scanned = np.clip(255 * (scanned / 255) ** 1.1, 0, 255).astype(np.uint8)
    back = cv2.resize(encode(scanned, "JPEG", quality=80), (width, height), interpolation=cv2.INTER_AREA)
    return back


def local(image: np.ndarray, share: float, how: str) -> np.ndarray:
    """A centred square of ``share`` of the area blurred hard (σ 8) or inpainted (Telea) away."""
    height, width = image.shape[:2]
    side = round((share * height * width) ** 0.5)
    top, left = (height - side) // 2, (width - side) // 2
    attacked = image.copy()
    if how == "blur":
        region = image[top : top + side, left : left + side]
        attacked[top : top + side, left : left + side] = cv2.GaussianBlur(region, (0, 0), 8)
        return attacked
    mask = np.zeros((height, width), np.uint8)
    mask[top : top + side, left : left + side] = 255
    return cv2.inpaint(image, mask, 5, cv2.INPAINT_TELEA)


def regenerate(images: dict[str, np.ndarray], strengths: list[float]) -> dict[tuple[str, float], np.ndarray]:
    """img2img over each picture at 512 px on its long side (the demo model's size), at each
    strength, 20 steps, an empty prompt; resized back."""
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline
    from visuels._internal.logs import quiet_third_party_logs
    from visuels.inputs.model_refs import DemoModelRef
    from visuels.models.host import ModelHost

    quiet_third_party_logs()
    done = {}
    with ModelHost(torch.device("cpu")).use(DemoModelRef(), torch.float32, None) as text_to_image:
        # The VAE by hand: from_pipe drops one whose class does not match its type hint (the demo's).
        pipeline = StableDiffusionImg2ImgPipeline.from_pipe(text_to_image, vae=text_to_image.vae)
        pipeline.set_progress_bar_config(disable=True)
        for name, image in images.items():
            height, width = image.shape[:2]
            scale = 512 / max(height, width)
            small = Image.fromarray(image).resize((round(width * scale / 8) * 8, round(height * scale / 8) * 8))
            for strength in strengths:
                generator = torch.Generator().manual_seed(11)
                out = pipeline("", image=small, strength=strength, num_inference_steps=20, generator=generator)
                done[(name, strength)] = _sized(np.asarray(out.images[0].convert("RGB")), image)
    return done


def averaging(pictures: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    """The attacker marks nothing: they collect AVERAGED published 1080² pictures (one key, each its
    own payload), estimate the pattern as the mean of their high-passed residuals, then subtract it
    from another marked picture (removal) and add it to an unmarked one (forgery)."""
    collected = [np.asarray(Image.fromarray(p).resize((1080, 1080))) for p in unmarked_pictures(AVERAGED, seed=77)]
    residuals = []
    for number, picture in enumerate(collected):
        marked = embed(picture, 0x1000 + number, KEY).astype(np.float32)
        residuals.append(marked - cv2.GaussianBlur(marked, (0, 0), 2.0))
    estimate = np.mean(residuals, axis=0).mean(axis=2, keepdims=True)  # the luminance pattern
    estimate *= 3.3 / max(1e-6, float(np.abs(estimate).mean()) * 1.4)  # scaled to the mark's strength
    rows = []
    for name, image in pictures.items():
        square = np.asarray(Image.fromarray(image).resize((1080, 1080)))
        marked = embed(square, PAYLOAD, KEY)
        for gain in (1.0, 2.0):
            removed = np.clip(marked - gain * estimate, 0, 255).astype(np.uint8)
            found = detect(removed, KEY).payload == PAYLOAD
            said = f"{'yes' if found else 'NO'}  {psnr(marked, removed):.1f} dB"
            rows.append((f"averaging: subtracted x{gain:g} ({name})", said))
        forged = np.clip(square + 2.0 * estimate, 0, 255).astype(np.uint8)
        claimed = detect(forged, KEY).payload
        said = "forged" if claimed is not None else "not forged"
        rows.append((f"averaging: added to a clean picture ({name})", said))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="no regeneration (no model)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    pictures = hosts()
    marked = {name: embed(image, PAYLOAD, KEY) for name, image in pictures.items()}
    # (category, attack, whether it keeps the picture's geometry: PSNR means something only then)
    attacks: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray], bool]] = {
        "screenshot 80 %, frame, JPEG 85": ("screenshot", screenshot, False),
        "screenshot 125 %, frame, JPEG 75": ("screenshot", lambda image: screenshot(image, 1.25, 75), False),
        "screenshot 50 %, frame, PNG": ("screenshot", lambda image: screenshot(image, 0.5, 100), False),
        "post on a page, 22 % of the screen's width, JPEG 80": (
            "screenshot",
            partial(page_screenshot, shown_share=0.22),
            False,
        ),
        "post on a page, 30 % of the width, JPEG 80": ("screenshot", partial(page_screenshot, shown_share=0.3), False),
        "post on a phone, across its width, JPEG 80": (
            "screenshot",
            partial(page_screenshot, shown_share=1.0, phone=True),
            False,
        ),
        "print and scan": ("print-and-scan", print_and_scan, False),
        "print and scan, another sheet": ("print-and-scan", lambda image: print_and_scan(image, 3), False),
        "blur σ8 over the centre 25 %": ("local blurring", lambda image: local(image, 0.25, "blur"), True),
        "blur σ8 over the centre 50 %": ("local blurring", lambda image: local(image, 0.5, "blur"), True),
        "inpaint the centre 10 %": ("local inpainting", lambda image: local(image, 0.10, "inpaint"), True),
        "inpaint the centre 25 %": ("local inpainting", lambda image: local(image, 0.25, "inpaint"), True),
        "inpaint the centre 50 %": ("local inpainting", lambda image: local(image, 0.5, "inpaint"), True),
    }
    width = 26
    print(f"{'attack (category)':<56}" + "".join(f"{name[: width - 2]:>{width}}" for name in pictures))
    for label, (category, attack, same_geometry) in attacks.items():
        cells = []
        for image in marked.values():
            attacked = attack(image)
            found = detect(attacked, KEY).payload == PAYLOAD
            quality = f"{psnr(image, attacked):5.1f} dB" if same_geometry else "      -"
            cells.append(f"{'yes' if found else 'NO'} {quality}")
        print(f"{label + ' (' + category + ')':<56}" + "".join(f"{cell:>{width}}" for cell in cells))
    if not args.quick:
        strengths = [0.1, 0.2, 0.3, 0.4, 0.5]
        regenerated = regenerate(marked, strengths)
        for strength in strengths:
            cells = []
            for name, image in marked.items():
                attacked = regenerated[(name, strength)]
                found = detect(attacked, KEY).payload == PAYLOAD
                cells.append(f"{'yes' if found else 'NO'} {psnr(image, attacked):5.1f} dB")
            label = f"img2img strength {strength} (regeneration, demo model)"
            print(f"{label:<56}" + "".join(f"{cell:>{width}}" for cell in cells))
    print()
    for label, result in averaging(pictures):
        print(f"{label:<80} {result}")


if __name__ == "__main__":
    main()
