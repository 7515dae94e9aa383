"""Rendering speed on a GPU: each speed-up alone, then the whole renderer against naive diffusers.

    python -m benchmarks.gpu_render variants [--family sd15 sdxl]   # the generation stage alone
    python -m benchmarks.gpu_render render [--family sd15 sdxl]     # end to end, CPU stage included
    python -m benchmarks.gpu_render render --tiny                   # proves the script runs (CPU, demo model)
    python -m benchmarks.gpu_render render --modes exact cutoff-40 few-step   # issue #31's speed options

``--modes``: each speed option of issue #31 end to end (``benchmarks.quality_guard.MODES``: the
campaign as written, the precision float8, guidance stopping at 40 % of the steps, a 4-step
trailing schedule at guidance 1, DeepCache), one renderer for all of them (a compiled model
compiles each batch shape once, as a render worker does), then the quality guard on the same
model: PSNR, SSIM and the charter's checks of each mode's pictures against the exact path's, same
prompts and seeds. ``--naive 0`` leaves out the naive loop.

End to end ("render"): the sample charter's campaign over its 79 communes, 4 audiences, format
instagram_square (1080², PNG), every file post-processed, watermarked, signed and recorded.
Naive: diffusers in fp16, one picture per call, then that picture's CPU stage, in one loop.
This renderer: the model host (bf16, torch.compile) and the CPU worker pool, after a warm-up
call that loads and compiles; images/s, peak GPU memory, how busy the GPU stage kept the GPU.

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
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also run as a script path

from benchmarks.full_size_models import NATIVE_SIZE, Family, build, save

REPO = Path(__file__).resolve().parents[1]

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


def add_random_lora(unet: torch.nn.Module, rank: int = 8) -> None:
    """A style LoRA's shape (rank 8 on the attention projections) with random weights."""
    from peft import LoraConfig

    unet.add_adapter(
        LoraConfig(
            r=rank, lora_alpha=rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False
        )
    )


def set_lora_merged(unet: torch.nn.Module, merged: bool) -> None:
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in unet.modules():
        if isinstance(module, BaseTunerLayer):
            module.merge() if merged else module.unmerge()


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


def variants(family: Family, peak: float, lora_only: bool = False) -> list[Measurement]:
    """Each speed-up added in turn, generation only (no CPU stage); or just LoRA adapters vs fused."""
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

    batches = (4, 8, 16, 32) if family == "sd15" else (4, 8)
    big = batches[-2]
    if lora_only:
        pipeline.to(dtype=torch.bfloat16)
        run("bf16", big)
    else:
        run("naive fp16", 1)
        pipeline.to(dtype=torch.bfloat16)
        run("bf16", 1)
        for batch in batches:
            run("bf16", batch)
    if family == "sdxl":
        return results  # compiled SDXL: measured through the renderer (render mode)
    add_random_lora(pipeline.unet)
    run("bf16 + LoRA r8 (adapters)", big)
    set_lora_merged(pipeline.unet, True)
    run("bf16 + LoRA r8 (fused)", big)
    set_lora_merged(pipeline.unet, False)
    if lora_only:
        return results
    pipeline.unet.unload_lora()
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


def write_campaign(folder: Path, model: dict, steps: int, **settings: object) -> Path:
    charter = REPO / "brand_assets" / "solane"
    folder.mkdir(parents=True, exist_ok=True)
    campaign = folder / "campaign.yaml"
    campaign.write_text(
        json.dumps(
            {
                "name": "Banc GPU",
                "charter": str(charter / "charter.yaml"),
                "communes": {"file": str(charter / "communes.csv")},
                "model": model,
                "prompt": "photograph of {commune}, {landmark}, {landscape}, {season}, for {audience}",
                "season": "summer",
                "audiences": {
                    "residents": "families",
                    "visitors": "tourists",
                    "investors": "firms",
                    "students": "youth",
                },
                "formats": ["instagram_square"],
                "steps": steps,
                "guidance": GUIDANCE,
                "scheduler": "euler",
                "seed": {"policy": "per_job", "base": 1},
                **settings,
            }
        ),
        encoding="utf-8",
    )
    return campaign


def naive_rate(model_folder: Path | None, jobs: list, target: object, device: str) -> float:
    """A straightforward loop: diffusers in fp16 (fp32 on a CPU), one picture per call, then its CPU stage."""
    from diffusers import DiffusionPipeline
    from visuels.engine.cpu_stage import WorkerResources, finish_picture
    from visuels.models.demo import ensure_demo_model

    dtype = torch.float16 if device == "cuda" else torch.float32
    pipeline = DiffusionPipeline.from_pretrained(model_folder or ensure_demo_model(), dtype=dtype).to(device)
    pipeline.set_progress_bar_config(disable=True)
    resources = WorkerResources()

    def one(job: object) -> None:
        image = pipeline(
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            width=job.generation_width,
            height=job.generation_height,
            num_inference_steps=job.steps,
            guidance_scale=job.guidance,
            generator=torch.Generator().manual_seed(job.seed),
        ).images[0]
        finish_picture(resources, target, job, np.asarray(image))

    one(jobs[0])  # warm-up
    started = time.perf_counter()
    for job in jobs[1:]:
        one(job)
    rate = (len(jobs) - 1) / (time.perf_counter() - started)
    resources.close()
    return rate


def renderer_run(renderer: object, plan: object, target: object, batch: int, timed: int) -> dict:
    """One warm-up call (load, compile for a new batch shape), then ``timed`` pictures, timed."""
    device = renderer.host.device.type
    busy = [0.0]
    generate = renderer.host.generate_pictures

    def timed_generate(*args: object, **kwargs: object) -> list:
        started = time.perf_counter()
        try:
            return generate(*args, **kwargs)
        finally:
            busy[0] += time.perf_counter() - started

    renderer.host.generate_pictures = timed_generate
    setup = plan.setup
    started = time.perf_counter()
    renderer.render(setup.model, setup.precision, setup.lora, plan.pending[:batch], target, batch)
    warm_up = time.perf_counter() - started
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    busy[0] = 0.0
    jobs = plan.pending[batch : batch + timed]
    started = time.perf_counter()
    renderer.render(setup.model, setup.precision, setup.lora, jobs, target, batch)
    wall = time.perf_counter() - started
    del renderer.host.generate_pictures  # the class's method again
    return {
        "images_per_s": len(jobs) / wall,
        "warm_up_s": warm_up,
        "gpu_stage_busy": busy[0] / wall,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0,
        "images": len(jobs),
    }


def render_family(
    family: str,
    tiny: bool,
    workers: int,
    timed: int,
    naive_images: int,
    modes: list[str],
    format_on_device: bool = False,
) -> list[dict]:
    """Naive against this renderer, end to end, for one model family (or the demo model with
    --tiny), once per speed ``mode`` (the campaign changed as the mode says); then the quality
    guard of each mode's pictures against the exact path's. One renderer serves every mode, so a
    compiled model compiles each batch shape once, as a render worker would. ``format_on_device``:
    the renderer crops, resamples and grades on the GPU before the CPU stage (VISUELS_FORMAT_ON_DEVICE)."""
    import tempfile

    from visuels.engine.cpu_stage import CpuStage
    from visuels.engine.renderer import Renderer
    from visuels.engine.run import export_target
    from visuels.marking.keys import init_local_chain
    from visuels.models.host import ModelHost
    from visuels.planning.plan import plan_render
    from visuels.planning.request import RenderSettings

    from benchmarks.quality_guard import MODES, guard

    device = "cpu" if tiny else "cuda"
    folder = Path(tempfile.mkdtemp(prefix="gpu-render-"))
    os.environ["VISUELS_KEYS_DIR"] = str(folder / "keys")
    init_local_chain(folder / "keys")
    model_folder = None if tiny else save(family, folder / "model")
    model = {"kind": "demo"} if tiny else {"kind": "diffusers", "path": str(model_folder)}
    exact = {"steps": 4 if tiny else STEPS[family], "guidance": GUIDANCE, "scheduler": "euler"}
    batch = 2 if tiny else (16 if family == "sd15" else 8)
    dtype = "float32" if tiny else "bfloat16"
    settings = RenderSettings(device=device, dtype=dtype)
    naive = None
    if naive_images:
        naive_plan = plan_render(write_campaign(folder / "naive", model, **exact), folder / "naive", settings=settings)
        naive_target = export_target(naive_plan, folder / "naive")
        naive = naive_rate(model_folder, naive_plan.pending[:naive_images], naive_target, device)
        print(f"{family}: naive {naive:.2f} images/s", flush=True)
    # Two models kept: a mode in float8 holds its own quantized copy beside the bf16 one.
    host = ModelHost(torch.device(device), keep_models=2, compile_models=not tiny)
    renderer = Renderer(host, CpuStage(workers), format_on_device=format_on_device)
    results = []
    for mode in modes:
        out = folder / mode
        changes = dict(MODES[mode])
        mode_settings = settings.model_copy(update={"dtype": changes.pop("precision", dtype)})
        plan = plan_render(write_campaign(out, model, **{**exact, **changes}), out, settings=mode_settings)
        staged = renderer_run(renderer, plan, export_target(plan, out), batch, timed)
        name = "demo (tiny, CPU)" if tiny else family
        label = f"{mode}, formatted on device" if format_on_device else mode
        results.append({"family": name, "mode": label, "batch": batch, "workers": workers, **staged})
        if naive:
            results[-1] |= {"naive_images_per_s": naive, "speed_up": staged["images_per_s"] / naive}
        print(results[-1], flush=True)
    if len(modes) > 1:
        guarded = {name: MODES[name] for name in dict.fromkeys(["exact", *modes])}
        pictures = 4 if tiny else batch
        guarded_results = guard(model, device, dtype, pictures, batch, guarded, exact, renderer.host)
        by_mode = {item["mode"]: item for item in guarded_results}
        for result, mode in zip(results, modes, strict=True):
            result["guard"] = by_mode[mode]
    renderer.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="render", choices=["variants", "render"])
    parser.add_argument("--family", nargs="+", default=["sd15", "sdxl"], choices=["sd15", "sdxl"])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "gpu_render.json")
    parser.add_argument("--tiny", action="store_true", help="the demo model on the CPU: proves the script runs")
    parser.add_argument("--lora-only", action="store_true", help="variants: only a LoRA as adapters vs fused")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2), help="CPU stage processes")
    parser.add_argument("--images", type=int, default=0, help="timed pictures (default: 256 SD1.5, 64 SDXL)")
    parser.add_argument("--modes", nargs="+", default=["exact"], help="render: speed options (quality_guard.MODES)")
    parser.add_argument("--naive", type=int, help="render: pictures of the naive loop (0: skip it)")
    parser.add_argument(
        "--format-on-device", action="store_true", help="render: crop, resample and grade on the GPU first"
    )
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
        results = [m for family in args.family for m in variants(family, peak, args.lora_only)]
        args.out.write_text(json.dumps([asdict(m) for m in results], indent=1))
        print(f"{'family':6} {'variant':48} {'batch':>5} {'img/s':>7} {'GiB':>6} {'of peak':>7}")
        for m in results:
            print(
                f"{m.family:6} {m.variant:48} {m.batch:5d} {m.images_per_s:7.2f} {m.peak_gib:6.1f}"
                f" {m.peak_fraction:7.1%}"
            )
    else:
        families = ["demo"] if args.tiny else args.family
        results = []
        for family in families:
            timed = args.images or (4 if args.tiny else 256 if family == "sd15" else 64)
            naive_images = args.naive if args.naive is not None else 3 if args.tiny else 13 if family == "sd15" else 5
            results += render_family(
                family, args.tiny, args.workers, timed, naive_images, args.modes, args.format_on_device
            )
        args.out.write_text(json.dumps(results, indent=1))
        print(f"{'model':16} {'mode':22} batch workers naive/s   img/s     x GPU busy   GiB  warm-up  PSNR  SSIM")
        for r in results:
            guarded = r.get("guard", {"psnr_db": float("inf"), "ssim": 1.0})
            print(
                f"{r['family']:16} {r['mode']:22} {r['batch']:5d} {r['workers']:7d}"
                f" {r.get('naive_images_per_s', 0):7.2f}"
                f" {r['images_per_s']:7.2f} {r.get('speed_up', 0):5.1f} {r['gpu_stage_busy']:8.0%} {r['peak_gib']:5.1f}"
                f" {r['warm_up_s']:7.0f}s {guarded['psnr_db']:5.1f} {guarded['ssim']:5.3f}"
            )


if __name__ == "__main__":
    main()
