"""LoRA training speed and peak memory.

    .venv/bin/python benchmarks/train_lora.py [--steps 100]

CPU: the real training run (``run_training``) on the demo model and the sample references at
64 px and at 128 px; steps/s and the process's peak resident memory. With CUDA: also an
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
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def cpu_runs(steps: int) -> None:
    from pipelines.model_reference import DemoModelRef
    from pipelines.third_party_logs import quiet_third_party_logs
    from pipelines.training.run import run_training
    from pipelines.training.trainer import TrainingConfig

    quiet_third_party_logs()
    for resolution, batch in ((64, 4), (128, 2)):
        config = TrainingConfig(
            steps=steps, resolution=resolution, rank=8, batch_size=batch, learning_rate=1e-3, checkpoint_every=steps
        )
        times: list[float] = []
        last = [time.perf_counter()]

        def on_step(step: int, loss: float, times: list[float] = times, last: list[float] = last) -> None:
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now

        with tempfile.TemporaryDirectory() as root:
            summary = run_training(
                REPO / "brand_assets" / "solane", DemoModelRef(), config, root=Path(root), on_step=on_step
            )
        loop = sorted(times[5:])  # past the first steps' warm-up
        median = loop[len(loop) // 2]
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"demo model, {resolution}px, batch {batch}: {1 / median:.1f} steps/s (median step {median * 1000:.0f} ms),"
            f" loss -{summary.loss_drop:.1%} over {steps} steps, peak RSS so far {peak_mb:.0f} MB"
        )


def gpu_runs(steps: int) -> None:
    from diffusers import UNet2DConditionModel
    from peft import LoraConfig

    torch.manual_seed(0)
    unet = UNet2DConditionModel(  # Stable Diffusion 1.5's UNet configuration, random weights
        sample_size=64,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=768,
        attention_head_dim=8,
        layers_per_block=2,
    ).to("cuda")
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
    print(f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    cpu_runs(args.steps)
    if torch.cuda.is_available():
        print(torch.cuda.get_device_name())
        gpu_runs(args.steps)
    else:
        print("no CUDA device: the SD1.5-sized GPU measurement is skipped")


if __name__ == "__main__":
    main()
