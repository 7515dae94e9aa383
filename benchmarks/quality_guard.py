"""The quality guard for every speed option: the same prompts and starting noise through the exact
path and through the faster one, and how far apart the pictures land.

    python -m benchmarks.quality_guard                          # the demo model, on the CPU
    python -m benchmarks.quality_guard --model DIR --device cuda --dtype bfloat16 --pictures 16

Each mode is a change of campaign settings (issue #31): guidance that stops after 40 % of the
steps; a few-step schedule (4 steps, trailing Euler, guidance 1); the UNet's deep features reused
for two steps in three (DeepCache); the first and the third together. For each, against the exact
path's pictures (the campaign as written): PSNR (dB) and SSIM (Wang et al. 2004, on luminance,
an 11-tap Gaussian window of σ 1.5: computed offline, no learned model), the share of pictures
that pass the charter's checks after post-processing, and the generation stage's pictures/s.

Random weights cannot show what an option costs a real model: their pictures are noise, and
noise through fewer passes is other noise. The numbers on the demo model prove the harness runs;
the ones that decide whether to keep an option come from a real checkpoint (``--model DIR``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
# Each mode's campaign settings: "exact" is the campaign as written, the others change it;
# "precision" is the render's precision instead (RenderSettings.dtype), not a campaign setting.
MODES: dict[str, dict] = {
    "exact": {},
    "fp8": {"precision": "float8"},  # the denoiser's matrix products in FP8
    "fp8+cutoff-40": {"precision": "float8", "guidance_cutoff": 0.4},
    "cutoff-40": {"guidance_cutoff": 0.4},  # guidance on the first 40 % of the steps
    "few-step": {"steps": 4, "scheduler": "euler_trailing", "guidance": 1.0},  # single pass
    "deep-cache-3": {"deep_cache": 3},  # the UNet's deep blocks on one step in three
    "cutoff-40+deep-cache-3": {"guidance_cutoff": 0.4, "deep_cache": 3},
}


def psnr(reference: np.ndarray, other: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB over 8-bit pixels (infinite when identical)."""
    error = np.mean((reference.astype(np.float64) - other.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(255.0**2 / error))


def ssim(reference: np.ndarray, other: np.ndarray) -> float:
    """Structural similarity of the two pictures' luminance, mean over the picture (1: identical)."""
    first, second = (cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY).astype(np.float64) for picture in (reference, other))

    def blur(values: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(values, (11, 11), 1.5)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mean1, mean2 = blur(first), blur(second)
    var1 = blur(first * first) - mean1**2
    var2 = blur(second * second) - mean2**2
    covariance = blur(first * second) - mean1 * mean2
    index = ((2 * mean1 * mean2 + c1) * (2 * covariance + c2)) / ((mean1**2 + mean2**2 + c1) * (var1 + var2 + c2))
    return float(index.mean())


def write_campaign(folder: Path, model: dict, **settings: object) -> Path:
    """A campaign over the sample charter's communes, one audience, instagram_square."""
    charter = REPO / "brand_assets" / "solane"
    campaign = folder / f"campaign-{len(list(folder.glob('campaign-*')))}.yaml"
    fields = {
        "name": "Garde qualité",
        "charter": str(charter / "charter.yaml"),
        "communes": {"file": str(charter / "communes.csv")},
        "model": model,
        "prompt": "photograph of {commune}, {landmark}, {landscape}, {season}, for {audience}",
        "season": "summer",
        "audiences": {"residents": "families"},
        "formats": ["instagram_square"],
        "photos": None,
        "seed": {"policy": "per_job", "base": 11},
        **settings,
    }
    campaign.write_text(json.dumps(fields, ensure_ascii=False), encoding="utf-8")
    return campaign


def charter_passes(campaign: object, jobs: list, pictures: list[np.ndarray]) -> float:
    """Share of the pictures whose post-processed output passes every charter check."""
    from PIL import Image
    from visuels.postprocess.chain import postprocess
    from visuels.postprocess.compliance import assess

    charter = campaign.charter
    passed = 0
    for job, pixels in zip(jobs, pictures, strict=True):
        result = postprocess(
            Image.fromarray(pixels), charter, job.width, job.height, job.language, job.commune_name, job.headline
        )
        passed += assess(result, charter).passed
    return passed / len(jobs)


def guard(
    model: dict,
    device: str,
    dtype: str,
    pictures: int,
    batch: int,
    modes: dict[str, dict],
    base: dict | None = None,
    host: object | None = None,
) -> list[dict]:
    """Each mode's pictures against the first mode's (the exact path), same prompts and seeds;
    ``base``: campaign settings every mode starts from (none: the model family's defaults);
    ``host``: a model host already warm (its compiled batch shapes reused: batches padded to
    ``batch``), else a new one."""
    from visuels.inputs.campaign import load_campaign
    from visuels.models.devices import choose_dtype
    from visuels.models.host import ModelHost
    from visuels.models.reference import describe_model
    from visuels.planning.jobs import expand_jobs

    pad_to = batch if host is not None else None
    host = host or ModelHost(torch.device(device), compile_models=device == "cuda")
    folder = Path(tempfile.mkdtemp(prefix="quality-guard-"))
    results, reference = [], None
    for label, mode in modes.items():
        settings = dict(mode)
        precision = settings.pop("precision", dtype)
        torch_dtype = choose_dtype(host.device, precision)
        campaign = load_campaign(write_campaign(folder, model, **{**(base or {}), **settings}))
        info = describe_model(campaign.model)
        jobs = expand_jobs(campaign, info, precision)[:pictures]
        host.generate(campaign.model, torch_dtype, None, jobs[:1], pad_to)  # load, compile, warm up
        started = time.perf_counter()
        made = [
            picture
            for start in range(0, len(jobs), batch)
            for picture in host.generate(campaign.model, torch_dtype, None, jobs[start : start + batch], pad_to)
        ]
        rate = len(jobs) / (time.perf_counter() - started)
        reference = reference if reference is not None else made
        results.append(
            {
                "mode": label,
                "pictures_per_s": rate,
                "psnr_db": float(np.mean([psnr(a, b) for a, b in zip(reference, made, strict=True)])),
                "ssim": float(np.mean([ssim(a, b) for a, b in zip(reference, made, strict=True)])),
                "charter_passed": charter_passes(campaign, jobs, made),
            }
        )
        print(results[-1], flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a diffusers folder (default: the demo model)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16" if torch.cuda.is_available() else "float32")
    parser.add_argument("--pictures", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "quality_guard.json")
    args = parser.parse_args()
    model = {"kind": "diffusers", "path": args.model} if args.model else {"kind": "demo"}
    print(f"{platform.machine()}, torch {torch.__version__}, {args.device}, {args.dtype}, model {model}", flush=True)
    results = guard(model, args.device, args.dtype, args.pictures, args.batch, MODES)
    args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"\n{'mode':24} {'pictures/s':>10} {'PSNR dB':>8} {'SSIM':>6} {'charter ok':>10}")
    for result in results:
        print(
            f"{result['mode']:24} {result['pictures_per_s']:10.2f} {result['psnr_db']:8.1f} {result['ssim']:6.3f}"
            f" {result['charter_passed']:10.0%}"
        )


if __name__ == "__main__":
    main()
