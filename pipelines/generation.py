"""Batched text-to-image through diffusers, deterministic per job."""

from __future__ import annotations

from collections.abc import Sequence

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
from PIL import Image

from pipelines.jobs import RenderJob

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


def generate(pipeline: DiffusionPipeline, jobs: Sequence[RenderJob]) -> list[Image.Image]:
    """Render jobs that share size, steps, guidance and scheduler in one diffusers call.

    Each job gets its own CPU generator seeded with its seed, so its starting noise does not
    depend on the batch it lands in or on the device.
    """
    first = jobs[0]
    signature = (first.generation_width, first.generation_height, first.steps, first.guidance, first.scheduler)
    for job in jobs[1:]:
        if (job.generation_width, job.generation_height, job.steps, job.guidance, job.scheduler) != signature:
            raise ValueError("jobs in one batch must share size, steps, guidance and scheduler")
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
            output_type="pil",
        )
    return list(result.images)
