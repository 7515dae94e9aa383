"""LoRA training speed and peak memory.

    .venv/bin/python -m benchmarks.train_lora [--steps 100]

CPU: the real training run (``run_training``) on the demo model and the sample references at
64 px and at 128 px, UNet LoRA alone and with the text encoder's; steps/s and the process's peak
resident memory. Then the test suite's training (300 steps, 64 px, lr 3e-3 cosine) with three
seeds: loss drop and colour distance to the references without and with the LoRA, the numbers
behind the thresholds of ``tests/test_training.py``. With CUDA: also an
SD1.5-sized UNet built from its config with random weights (no download) at 512x512 (64x64
latents, 77x768 text embeddings), LoRA on its attention projections, bf16 autocast, batch 1
and 4; steps/s and peak GPU memory.
"""

from __future__ import annotations

import argparse
import platform
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from visuels.training.run import TrainingSummary
    from visuels.training.trainer import TrainingConfig

REPO = Path(__file__).resolve().parents[1]


def _training(config: TrainingConfig, on_step: Callable[[int, float], None] | None = None) -> TrainingSummary:
    from visuels.inputs.model_refs import DemoModelRef
    from visuels.training.run import run_training

    with tempfile.TemporaryDirectory() as root:
        return run_training(REPO / "brand_assets" / "solane", DemoModelRef(), config, root=Path(root), on_step=on_step)


def cpu_runs(steps: int) -> None:
    from visuels.training.trainer import TrainingConfig

    for resolution, batch, text_encoder in ((64, 4, False), (64, 4, True), (128, 2, False)):
        config = TrainingConfig(
            steps=steps,
            resolution=resolution,
            rank=8,
            batch_size=batch,
            learning_rate=3e-3,
            lr_schedule="cosine",
            checkpoint_every=steps,
            train_text_encoder=text_encoder,
        )
        times: list[float] = []
        last = [time.perf_counter()]

        def on_step(step: int, loss: float, times: list[float] = times, last: list[float] = last) -> None:
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now

        summary = _training(config, on_step)
        loop = sorted(times[5:])  # past the first steps' warm-up
        median = loop[len(loop) // 2]
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        lora = "UNet + text encoder" if text_encoder else "UNet"
        print(
            f"demo model, {lora}, {resolution}px, batch {batch}: {1 / median:.1f} steps/s"
            f" (median step {median * 1000:.0f} ms), loss change {-summary.loss_drop:+.1%} over {steps} steps,"
            f" peak RSS so far {peak_mb:.0f} MB"
        )


def quality_runs() -> None:
    from visuels.training.trainer import TrainingConfig

    for seed in (0, 1, 2):
        config = TrainingConfig(
            steps=300,
            resolution=64,
            rank=8,
            learning_rate=3e-3,
            lr_schedule="cosine",
            batch_size=4,
            checkpoint_every=150,
            seed=seed,
        )
        started = time.perf_counter()
        summary = _training(config)
        before, after = summary.colour_distance_without_lora, summary.colour_distance_with_lora
        print(
            f"300 steps, seed {seed}: {time.perf_counter() - started:.1f} s, loss change {-summary.loss_drop:+.1%},"
            f" colour distance {before:.2f} -> {after:.2f} ({(before - after) / before:.1%} closer)"
        )


def gpu_runs(steps: int) -> None:
    from peft import LoraConfig

    from benchmarks.full_size_models import sd15_unet

    torch.manual_seed(0)
    unet = sd15_unet().to("cuda")
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=16, lora_alpha=16, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    optimizer = torch.optim.AdamW([p for p in unet.parameters() if p.requires_grad], lr=1e-4)
    for batch in (1, 4):
        latents = torch.randn(batch, 4, 64, 64, device="cuda")
        embeddings = torch.randn(batch, 77, 768, device="cuda")
        torch.cuda.reset_peak_memory_stats()
        for step in range(steps + 10):
            if step == 10:
                torch.cuda.synchronize()
                started = time.perf_counter()
            timesteps = torch.randint(0, 1000, (batch,), device="cuda")
            with torch.autocast("cuda", dtype=torch.bfloat16):
                prediction = unet(latents, timesteps, encoder_hidden_states=embeddings).sample
            loss = torch.nn.functional.mse_loss(prediction.float(), latents)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        rate = steps / (time.perf_counter() - started)
        peak = torch.cuda.max_memory_allocated() / 2**30
        print(f"SD1.5-sized UNet, 512px, batch {batch}, bf16: {rate:.2f} steps/s, peak GPU memory {peak:.1f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    from visuels._internal.logs import quiet_third_party_logs

    quiet_third_party_logs()
    print(f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    cpu_runs(args.steps)
    quality_runs()
    if torch.cuda.is_available():
        print(torch.cuda.get_device_name())
        gpu_runs(args.steps)
    else:
        print("no CUDA device: the SD1.5-sized GPU measurement is skipped")


if __name__ == "__main__":
    main()
