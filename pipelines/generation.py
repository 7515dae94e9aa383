"""Batched text-to-image through diffusers, deterministic per job."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)

from pipelines.jobs import BATCH_FIELDS, RenderJob, batch_signature

SCHEDULERS = {
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "ddim": DDIMScheduler,
    "dpmpp_2m": DPMSolverMultistepScheduler,
    "pndm": PNDMScheduler,
    "unipc": UniPCMultistepScheduler,
}


def use_scheduler(pipeline: DiffusionPipeline, name: str) -> None:
    """Swap the pipeline's scheduler, keeping the model's own noise schedule settings."""
    scheduler_class = SCHEDULERS[name]
    if not isinstance(pipeline.scheduler, scheduler_class):
        pipeline.scheduler = scheduler_class.from_config(pipeline.scheduler.config)


def generate(pipeline: DiffusionPipeline, jobs: Sequence[RenderJob]) -> list[np.ndarray]:
    """Render jobs that share a batch signature in one diffusers call: H×W×3 uint8 pictures.

    Each job gets its own CPU generator seeded with its seed, so its starting noise does not
    depend on the batch it lands in or on the device. The pictures become bytes on the device,
    so only a quarter of the floats' size crosses to the host.
    """
    first = jobs[0]
    signature = batch_signature(first)
    for job in jobs[1:]:
        for field, wanted, got in zip(BATCH_FIELDS, signature, batch_signature(job), strict=True):
            if got != wanted:
                raise ValueError(f"jobs in one batch must share `{field}`: got {wanted!r} and {got!r}")
    use_scheduler(pipeline, first.scheduler)
    generators = [torch.Generator(device="cpu").manual_seed(job.seed) for job in jobs]
    with torch.inference_mode():
        result = pipeline(
            prompt=[job.prompt for job in jobs],
            negative_prompt=[job.negative_prompt for job in jobs],
            width=first.generation_width,
            height=first.generation_height,
            num_inference_steps=first.steps,
            guidance_scale=first.guidance,
            generator=generators,
            output_type="pt",
        )
        # The same rounding as diffusers' own conversion to PIL: float32, x 255, round half to even.
        pixels = (result.images.float() * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return list(pixels.cpu().numpy())
