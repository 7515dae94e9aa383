"""Throughput of the CPU stage alone: post-process, assess, mark, encode, sign, write, record.

    python -m benchmarks.cpu_stage [--pictures 48] [--workers 1 2 4]

An instant stand-in generator: pictures of an SD1.5-sized generation (512×512, textured like
a photograph) are ready before timing starts, so only the CPU stage is measured, through the
same ``CpuStage`` the renderer uses. Output format instagram_square (1080×1080, PNG), the sample
charter, a local signing chain and a SQLite database of record in a temporary folder.

First the cost per picture of each step, in one process (each step's function timed where the
stage calls it); the whole stage for PNG, JPEG and WebP outputs; the encoders alone on finished
pictures, Pillow's PNG encoder (what the stage used before issue #31) beside the one it uses, in
the same run; then pictures per second for each number of worker processes. Last, the same with
the pictures cropped, resampled and graded on the rendering device first (VISUELS_FORMAT_ON_DEVICE:
``visuels.engine.device_format``, on the GPU where there is one, else torch on the CPU): what that
costs the GPU process per picture, and what it leaves the CPU stage.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TARGET_IMAGES_PER_S = 8.0  # one H100 with SD1.5 (benchmarks/gpu_render.py)
TARGET_MS_PER_PNG = 90.0  # issue #31: one core's time per 1080² PNG picture


def stand_in_pictures(count: int, size: int = 512) -> list[np.ndarray]:
    """Smooth shapes plus fine noise: as busy as a photograph for the crop, grading and watermark."""
    generator = np.random.default_rng(0)
    rows, cols = np.mgrid[0:size, 0:size] / size
    pictures = []
    for _ in range(count):
        phase = generator.uniform(0, 6.3, 3)
        base = np.stack([np.sin(cols * 5 + phase[c]) * np.cos(rows * 3 - phase[c]) for c in range(3)], axis=2)
        noise = generator.normal(0, 0.08, (size, size, 3))
        pictures.append((np.clip(0.5 + 0.35 * base + noise, 0, 1) * 255).astype(np.uint8))
    return pictures


def plan_jobs(folder: Path, count: int) -> tuple[list, object]:
    """``count`` jobs of a campaign over the sample charter, for an SD1.5-sized model, and their export target."""
    from visuels.engine.cpu_stage import ExportTarget
    from visuels.inputs.campaign import load_campaign
    from visuels.inputs.model_refs import DemoModelRef
    from visuels.marking.keys import signing_files
    from visuels.models.reference import DEMO_LICENCE, ModelInfo
    from visuels.planning.jobs import expand_jobs
    from visuels.record.database import database_url

    campaign_file = folder / "campaign.yaml"
    charter = REPO / "brand_assets" / "solane"
    campaign_file.write_text(
        f"""
name: Banc d'essai
charter: {charter / "charter.yaml"}
communes: {{file: {charter / "communes.csv"}}}
prompt: "poster of {{commune}}, {{landscape}}"
season: summer
audiences: {{residents: families}}
formats: [instagram_square]
""",
        encoding="utf-8",
    )
    campaign = load_campaign(campaign_file)
    sd15 = ModelInfo(
        hash="0" * 64,
        family="sd15",
        steps=25,
        guidance=7.0,
        licence=DEMO_LICENCE,
        native_size=512,
        size_multiple=64,
        description="SD1.5",
        ref=DemoModelRef(),
    )
    jobs = expand_jobs(campaign, sd15, "bfloat16")
    jobs = (jobs * (count // len(jobs) + 1))[:count]
    # Each picture its own key and file, as in a real run.
    jobs = [
        job.model_copy(
            update={"key": f"{n:064x}", "relative_path": job.relative_path.replace(job.key[:12], f"{n:012x}")}
        )
        for n, job in enumerate(jobs)
    ]
    output = folder / "outputs"
    target = ExportTarget(
        output_root=output,
        charter_path=campaign.charter.path,
        database_url=database_url(output),
        signing=signing_files(),
        model_description="SD1.5 stand-in",
    )
    return jobs, target


# A step timed inside the one above it: its time is that step's too.
WITHIN = "  within it: "


def step_costs(jobs: list, target: object, pictures: list[np.ndarray]) -> dict[str, float]:
    """Milliseconds per picture of each step, finishing pictures one after another in this process."""
    import cv2
    from visuels.engine import cpu_stage, export
    from visuels.marking import mark
    from visuels.postprocess import chain

    cv2.setNumThreads(1)
    timings: dict[str, list[float]] = {}

    def timed(module: object, name: str, label: str) -> None:
        original: Callable = getattr(module, name)

        def wrapper(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timings[label].append(time.perf_counter() - started)

        timings[label] = []  # the table's order
        setattr(module, name, wrapper)

    for module, name, label in (
        (chain, "crop_to_aspect", "crop to the format's aspect"),
        (chain, "resample", "resample to 1080²"),
        (chain, "grade_to_palette", "palette grading"),
        (chain, "conformity", "palette scores (2)"),
        (chain, "draw_ai_label", "AI label"),
        (chain, "place_logo", "logo"),
        (chain, "draw_text_block", "commune name + headline"),
        (cpu_stage, "assess", "compliance"),
        (mark.watermark, "embed_readable", "watermark, encoded, read back"),
        (mark, "encode", WITHIN + "PNG encode + XMP"),
        (mark.watermark, "read_as_embedded", WITHIN + "the read-back"),
        (mark.iscc, "image_code", "ISCC image code"),
        (mark, "sign_asset", "C2PA signing"),
        (export, "save_edge_map", "edge map write"),
        (mark, "perceptual_hash", "perceptual hash"),
        (export, "write_with", "thumbnail write"),
        (export.ledger, "append", "ledger row"),
        (export.manifest, "add", "outputs row"),
    ):
        timed(module, name, label)
    wall, cpu, _ = whole_stage(
        jobs, target, pictures, "png", after_warm_up=lambda: [v.clear() for v in timings.values()]
    )
    costs = {label: 1000 * statistics.median(values) for label, values in timings.items()}
    itemised = sum(value for label, value in costs.items() if not label.startswith(WITHIN))
    costs["the rest (copies, metadata, files)"] = wall - itemised  # medians: about
    costs["whole stage"] = wall
    costs["whole stage, CPU time"] = cpu
    return costs


def whole_stage(
    jobs: list, target: object, pictures: list, file_type: str, after_warm_up: Callable = lambda: None
) -> tuple[float, float, float]:
    """Median milliseconds per picture of the whole stage, its outputs written as ``file_type``:
    elapsed; the process's CPU time (what a core is busy for: not the waits for the disk to take
    the file, which the elapsed time counts); and the part of it spent in the kernel (taking the
    files into the page cache: the host's share, which varies from machine to machine and from
    day to day; a mean). The last picture warms the process up (charter, tables, signing) and is not counted."""
    from visuels.engine import cpu_stage

    suffix = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}[file_type]
    typed = [
        job.model_copy(
            update={"file_type": file_type, "relative_path": str(Path(job.relative_path).with_suffix(suffix))}
        )
        for job in jobs
    ]
    resources = cpu_stage.WorkerResources()
    cpu_stage.finish_picture(resources, target, typed[-1], pictures[-1])
    after_warm_up()
    elapsed, busy = [], []
    kernel_before = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    for job, picture in zip(typed[:-1], pictures[:-1], strict=True):
        started, started_cpu = time.perf_counter(), time.process_time()
        cpu_stage.finish_picture(resources, target, job, picture)
        elapsed.append(time.perf_counter() - started)
        busy.append(time.process_time() - started_cpu)
    # The kernel's time is counted in clock ticks: a mean over the pictures, not a median of each.
    kernel = (resource.getrusage(resource.RUSAGE_SELF).ru_stime - kernel_before) / len(elapsed)
    resources.close()
    return 1000 * statistics.median(elapsed), 1000 * statistics.median(busy), 1000 * kernel


def file_write_cost(folder: Path, size: int = 2_500_000, count: int = 20) -> float:
    """Median milliseconds this machine's file system takes to take one new file of ``size`` bytes
    (a 1080² PNG output's) into ``folder``, the files kept as outputs are: the host's part of the
    stage, beside the code's. (A file written over and over again reuses its cached pages: a virtual
    machine whose memory the host backs lazily pays for new ones.)"""
    folder.mkdir(parents=True, exist_ok=True)
    data = os.urandom(size)
    times = []
    for index in range(count):
        started = time.perf_counter()
        (folder / f"write-{index}.bin").write_bytes(data)
        times.append(time.perf_counter() - started)
    for index in range(count):
        (folder / f"write-{index}.bin").unlink()
    return 1000 * statistics.median(times)


def encoder_costs(pictures: list[np.ndarray]) -> dict[str, tuple[float, float]]:
    """Milliseconds and megabytes per finished 1080² picture for each encoder, in this process."""
    import io

    from PIL import Image
    from visuels.marking.mark import encode

    def pillow_png(image: Image.Image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()

    encoders: dict[str, Callable[[Image.Image], bytes]] = {
        "PNG, this project's writer (ISA-L)": lambda image: encode(np.asarray(image), "png", 72, ""),
        "PNG, Pillow at zlib level 1": pillow_png,
        "JPEG q92 (Pillow, libjpeg-turbo)": lambda image: encode(np.asarray(image), "jpeg", 72, ""),
        "WebP q92 (Pillow, libwebp)": lambda image: encode(np.asarray(image), "webp", 72, ""),
    }
    finished = [Image.fromarray(picture).resize((1080, 1080), Image.Resampling.BICUBIC) for picture in pictures]
    costs = {}
    for label, encoder in encoders.items():
        encoder(finished[0])
        times, sizes = [], []
        for image in finished:
            started = time.perf_counter()
            sizes.append(len(encoder(image)))
            times.append(time.perf_counter() - started)
        costs[label] = (1000 * statistics.median(times), statistics.median(sizes) / 1e6)
    return costs


def throughput(jobs: list, target: object, pictures: list, workers: int) -> float:
    """Pictures per second through a pool of ``workers`` processes (started and warmed up first)."""
    from visuels.engine.cpu_stage import CpuStage

    stage = CpuStage(workers)
    try:
        pairs = list(zip(jobs, pictures, strict=True))
        for future in [stage.submit(target, job, picture) for job, picture in pairs[:workers]]:
            future.result()  # every worker started and warm (charter, tables, signing)
        started = time.perf_counter()
        futures = [stage.submit(target, job, picture) for job, picture in pairs[workers:]]
        for future in futures:
            future.result()
        return len(futures) / (time.perf_counter() - started)
    finally:
        stage.close()


def device_formatting(jobs: list, target: object, pictures: list[np.ndarray]) -> tuple[str, float, list]:
    """The device, the median milliseconds per picture of formatting there (crop chosen, upload,
    resample, grade, download), and the formatted pictures."""
    import torch
    from visuels.engine.device_format import DeviceFormatter
    from visuels.inputs.charter import load_charter

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    formatter = DeviceFormatter(device, load_charter(target.charter_path))
    formatter.format(jobs[0], pictures[0])  # warm: kernels, the offsets table
    formatted, times = [], []
    for job, picture in zip(jobs, pictures, strict=True):
        started = time.perf_counter()
        formatted.append(formatter.format(job, picture))  # ends with the download: synchronised
        times.append(time.perf_counter() - started)
    return str(device), 1000 * statistics.median(times), formatted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=48)
    parser.add_argument("--workers", type=int, nargs="+", help="pool sizes (default: 1, 2, 4, … up to the cores)")
    args = parser.parse_args()
    from visuels._internal.allocator import keep_freed_memory

    keep_freed_memory()  # as every worker process of the stage does (the one-process timings below)
    cores = os.cpu_count() or 1
    pools = args.workers or sorted({1, 2, *[n for n in (4, 8, 12, 14, 16) if n <= cores], cores})
    print(f"{platform.machine()}, {cores} cores, Python {platform.python_version()}", flush=True)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        os.environ.setdefault("VISUELS_KEYS_DIR", str(folder / "keys"))
        from visuels.marking.keys import init_local_chain, keys_dir

        if not (keys_dir() / "signer.key").exists():
            init_local_chain(keys_dir())
        pictures = stand_in_pictures(args.pictures + max(pools))
        jobs, target = plan_jobs(folder, len(pictures))
        costs = step_costs(jobs[:24], target.model_copy(update={"output_root": folder / "steps"}), pictures[:24])
        print("\nstep (one process)                 ms per picture")
        for label, value in costs.items():
            print(f"{label:34} {value:8.1f}")
        print(
            f"\nwhole stage by output type   ms per picture: elapsed, CPU (target for PNG: ≤ {TARGET_MS_PER_PNG:.0f}),"
            " of which the kernel's"
        )
        for file_type in ("png", "jpeg", "webp"):
            typed_target = target.model_copy(update={"output_root": folder / f"whole-{file_type}"})
            wall, cpu, kernel = whole_stage(jobs[:16], typed_target, pictures[:16], file_type)
            print(f"{file_type:34} {wall:8.1f} {cpu:8.1f} {kernel:8.1f}", flush=True)
        print(f"this machine's file system takes a 2.5 MB file in {file_write_cost(folder / 'writes'):.1f} ms")
        print("\nencoder on a finished 1080² picture       ms       MB")
        for label, (milliseconds, megabytes) in encoder_costs(pictures[:12]).items():
            print(f"{label:38} {milliseconds:8.1f} {megabytes:8.2f}")
        print("\nworkers  pictures/s  per worker   speed-up")
        rates = {}
        for workers in pools:
            rates[workers] = throughput(
                jobs, target.model_copy(update={"output_root": folder / f"pool-{workers}"}), pictures, workers
            )
            speed_up = rates[workers] / rates[min(pools)] * min(pools)
            print(
                f"{workers:7d}  {rates[workers]:10.2f}  {rates[workers] / workers:10.2f}  {speed_up:8.2f}x", flush=True
            )
        largest = max(pools)
        per_worker = rates[largest] / largest
        print(
            f"\nAt {per_worker:.2f} pictures/s per worker with {largest} workers, {TARGET_IMAGES_PER_S:.0f} pictures/s"
            f" need about {TARGET_IMAGES_PER_S / per_worker:.1f} worker processes (cores), beside the GPU's feeder."
        )
        device, milliseconds, formatted = device_formatting(jobs, target, pictures)
        print(f"\nformatted on the device first ({device}): {milliseconds:.1f} ms per picture in the GPU process")
        on_device = target.model_copy(update={"output_root": folder / "device-whole"})
        wall, cpu, kernel = whole_stage(jobs[:16], on_device, formatted[:16], "png")
        print(f"{'whole stage, png (elapsed, CPU, kernel)':34} {wall:8.1f} {cpu:8.1f} {kernel:8.1f}", flush=True)
        print("workers  pictures/s  per worker")
        for workers in sorted({min(pools), largest}):
            pooled = target.model_copy(update={"output_root": folder / f"device-pool-{workers}"})
            rate = throughput(jobs, pooled, formatted, workers)
            print(f"{workers:7d}  {rate:10.2f}  {rate / workers:10.2f}", flush=True)


if __name__ == "__main__":
    main()
