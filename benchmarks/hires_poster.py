"""What the high-resolution pass costs per poster: generation on the device, then the CPU stage.

    python -m benchmarks.hires_poster                      # the demo model on this machine
    python -m benchmarks.hires_poster --family sd15 sdxl   # full-size random-weight models (a GPU)

For each family, three ways to make an A3 poster of the sample campaign, one picture per call:
the first pass alone, resized with Lanczos (poster_a3 as it was before the pass), poster_a3
(150 dpi, one 2x img2img pass) and poster_a3_300dpi (two 2x passes). Generation runs through
the model host the renderer uses (bf16 on a GPU, float32 on a CPU); the CPU stage (post-process,
watermark, encode, sign, write, record) runs in one process. Median seconds per poster over
``--posters`` posters after one warm-up, and the peak GPU memory of each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from visuels.planning.jobs import RenderJob
from visuels.planning.plan import RenderPlan

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also run as a script path

from benchmarks.full_size_models import save
from benchmarks.gpu_render import write_campaign

VARIANTS = ("first pass + Lanczos", "poster_a3", "poster_a3_300dpi")


def poster_jobs(plan: RenderPlan, count: int) -> dict[str, list[RenderJob]]:
    """``count`` jobs per variant, from the plan's poster_a3 and poster_a3_300dpi jobs."""
    posters = {name: [job for job in plan.jobs if job.format == name][:count] for name in VARIANTS[1:]}
    # Another key, so that its file and record do not collide with the real poster_a3's.
    plain = [job.model_copy(update={"hires": None, "key": "f" + job.key[1:]}) for job in posters["poster_a3"]]
    return {VARIANTS[0]: plain, **posters}


def measure(family: str, folder: Path, count: int, device: torch.device) -> dict[str, dict[str, object]]:
    """Per variant: the sizes, and median seconds of generation and of the CPU stage per poster."""
    from visuels.engine.cpu_stage import WorkerResources, finish_picture
    from visuels.engine.run import export_target
    from visuels.models.devices import choose_dtype
    from visuels.models.host import ModelHost
    from visuels.planning.plan import plan_render
    from visuels.planning.request import RenderSettings

    if family == "demo":
        model: dict = {"kind": "demo"}
    else:
        model = {"kind": "diffusers", "path": str(save(family, folder / family))}  # type: ignore[arg-type]
    campaign_file = write_campaign(folder, model, steps=20 if family == "demo" else 25)
    campaign = json.loads(campaign_file.read_text(encoding="utf-8"))
    campaign["formats"] = ["poster_a3", "poster_a3_300dpi"]
    campaign_file.write_text(json.dumps(campaign), encoding="utf-8")
    output = folder / f"outputs-{family}"
    plan = plan_render(campaign_file, output, settings=RenderSettings(device=device.type))
    target = export_target(plan, output)
    dtype = choose_dtype(device, plan.setup.precision)
    host = ModelHost(device)
    resources = WorkerResources()
    results: dict[str, dict[str, object]] = {}
    for variant, jobs in poster_jobs(plan, count + 1).items():
        generation, finishing = [], []
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for index, job in enumerate(jobs):
            started = time.perf_counter()
            picture = host.generate(plan.setup.model, dtype, None, [job])[0]
            generated = time.perf_counter()  # the pixels are on the host: the device is done
            finish_picture(resources, target, job, picture)
            if index:  # the first is a warm-up
                generation.append(generated - started)
                finishing.append(time.perf_counter() - generated)
        results[variant] = {
            "generated_at": f"{job.generation_width}×{job.generation_height}",
            "redrawn_at": " → ".join(f"{w}×{h}" for w, h in job.hires.sizes) if job.hires else "—",
            "output": f"{job.width}×{job.height}",
            "generation_s": statistics.median(generation),
            "cpu_stage_s": statistics.median(finishing),
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0,
        }
    resources.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", nargs="+", default=["demo"], choices=["demo", "sd15", "sdxl"])
    parser.add_argument("--posters", type=int, default=3, help="timed posters per variant (after one warm-up)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"{platform.machine()} CPU"
    print(f"{name}, {os.cpu_count()} cores, torch {torch.__version__}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        os.environ.setdefault("VISUELS_KEYS_DIR", str(folder / "keys"))
        from visuels.marking.keys import ensure_local_chain, keys_dir

        ensure_local_chain(keys_dir())
        for family in args.family:
            results = measure(family, folder, args.posters, device)
            print(f"\n{family}: seconds per poster (median of {args.posters})")
            header = ("variant", "generated", "redrawn at", "output", "model s", "CPU s", "GiB")
            print("{:22} {:>10} {:>20} {:>10} {:>8} {:>7} {:>5}".format(*header))
            for variant, row in results.items():
                print(
                    f"{variant:22} {row['generated_at']:>10} {row['redrawn_at']:>20} {row['output']:>10}"
                    f" {row['generation_s']:8.2f} {row['cpu_stage_s']:7.2f} {row['peak_gib']:5.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
