"""Rendering speed on a GPU: each speed-up alone, then the whole renderer against naive diffusers.

    python -m benchmarks.gpu_render variants [--family sd15 sdxl]   # the generation stage alone
    python -m benchmarks.gpu_render --tiny                           # proves the script runs (CPU)

Models: SD1.5 (512², 25 steps, guidance 7.5) and SDXL (1024², 30 steps) built from their
configurations with random weights (``full_size_models``): real kernels at real sizes, no
download. FLOPs per image are counted with torch's FlopCounterMode; the fraction of the bf16
peak uses a matrix product timed on the same GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.full_size_models import NATIVE_SIZE, Family, build

STEPS = {"sd15": 25, "sdxl": 30}
GUIDANCE = 7.5
PROMPT = "a sunny square in a small town of Occitanie, plane trees, people at a cafe"


@dataclass
class Measurement:
    family: str
    variant: str
    batch: int
    images_per_s: float
    peak_gib: float
    peak_fraction: float


def matmul_peak_tflops() -> float:
    """bf16 matrix-product rate on random data (8192³, median of 10 after warm-up)."""
    a, b = (torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    times = []
    for _ in range(10):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return 2 * 8192**3 / sorted(times)[5] / 1e12


def flops_per_image(pipeline: torch.nn.Module, family: Family) -> float:
    """UNet passes (two per step with guidance) plus the VAE decode, for one picture."""
    size = NATIVE_SIZE[family]
    with FlopCounterMode(display=False) as counter:
        pipeline(
            prompt=PROMPT, num_inference_steps=1, guidance_scale=GUIDANCE, width=size, height=size, output_type="pt"
        )
    one_step = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        pipeline(
            prompt=PROMPT, num_inference_steps=2, guidance_scale=GUIDANCE, width=size, height=size, output_type="pt"
        )
    per_step = counter.get_total_flops() - one_step
    return one_step + per_step * (STEPS[family] - 1)


def time_calls(call: Callable[[], object], calls: int) -> float:
    """Seconds per call, after one warm-up call (compilation, autotuning, allocator)."""
    call()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(calls):
        call()
    torch.cuda.synchronize()
    return (time.perf_counter() - started) / calls


def measure_variant(
    pipeline: torch.nn.Module, family: Family, variant: str, batch: int, flops: float, peak: float, calls: int = 2
) -> Measurement:
    size = NATIVE_SIZE[family]
    output_type = "pil" if variant.startswith("naive") else "pt"
    torch.cuda.reset_peak_memory_stats()

    def call() -> object:
        return pipeline(
            prompt=[PROMPT] * batch,
            negative_prompt=["blurry"] * batch,
            num_inference_steps=STEPS[family],
            guidance_scale=GUIDANCE,
            width=size,
            height=size,
            output_type=output_type,
        )

    seconds = time_calls(call, calls)
    rate = batch / seconds
    return Measurement(
        family=family,
        variant=variant,
        batch=batch,
        images_per_s=rate,
        peak_gib=torch.cuda.max_memory_allocated() / 2**30,
        peak_fraction=rate * flops / (peak * 1e12),
    )


def variants(family: Family, peak: float) -> list[Measurement]:
    """Each speed-up added in turn, generation only (no CPU stage)."""
    results = []
    pipeline = build(family, "cuda", torch.float16)
    flops = flops_per_image(pipeline, family)
    print(f"{family}: {flops / 1e12:.1f} TFLOP per image", flush=True)

    def run(variant: str, batch: int) -> None:
        try:
            results.append(measure_variant(pipeline, family, variant, batch, flops, peak))
            print(asdict(results[-1]), flush=True)
        except torch.cuda.OutOfMemoryError:
            print(f"{family} {variant} batch {batch}: out of memory", flush=True)
            torch.cuda.empty_cache()

    run("naive fp16", 1)
    pipeline.to(dtype=torch.bfloat16)
    run("bf16", 1)
    batches = (4, 8, 16, 32) if family == "sd15" else (2, 4, 8)
    for batch in batches:
        run("bf16", batch)
    big = batches[-2]
    pipeline.unet.to(memory_format=torch.channels_last)
    pipeline.vae.to(memory_format=torch.channels_last)
    run("bf16 channels_last", big)
    pipeline.fuse_qkv_projections()
    run("bf16 channels_last fused-qkv", big)
    pipeline.unet = torch.compile(pipeline.unet, fullgraph=True, dynamic=False)
    started = time.perf_counter()
    run("bf16 channels_last fused-qkv compiled", big)
    print(f"{family}: compile and measure took {time.perf_counter() - started:.0f} s", flush=True)
    pipeline.vae.decode = torch.compile(pipeline.vae.decode, fullgraph=True, dynamic=False)
    run("bf16 channels_last fused-qkv compiled unet+vae", big)
    run("bf16 channels_last fused-qkv compiled unet+vae", batches[-1])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="render", choices=["variants", "render"])
    parser.add_argument("--family", nargs="+", default=["sd15", "sdxl"], choices=["sd15", "sdxl"])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "gpu_render.json")
    args = parser.parse_args()
    import diffusers

    print(
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, diffusers {diffusers.__version__},"
        f" {torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA'}",
        flush=True,
    )
    if args.mode == "variants":
        peak = matmul_peak_tflops()
        print(f"bf16 matmul 8192³: {peak:.0f} TFLOP/s", flush=True)
        results = [m for family in args.family for m in variants(family, peak)]
        args.out.write_text(json.dumps([asdict(m) for m in results], indent=1))
        print(f"{'family':6} {'variant':48} {'batch':>5} {'img/s':>7} {'GiB':>6} {'of peak':>7}")
        for m in results:
            print(
                f"{m.family:6} {m.variant:48} {m.batch:5d} {m.images_per_s:7.2f} {m.peak_gib:6.1f}"
                f" {m.peak_fraction:7.1%}"
            )


if __name__ == "__main__":
    main()
