"""Starting noise that carries the keyed mark of ``visuels.marking.noise_mark``, one job at a time.

Each value's half of the normal law comes from the mark's bits; its place inside that half from
a uniform draw of the job's own generator (seeded with the job's seed, on the CPU): the same job,
key and payload give the same noise on any device and in any batch, and the noise is a true
standard normal sample. Text-to-image jobs start from it; the renderer's
other passes (photos, poster passes, outpainting) start from a picture, not from noise alone.
Every family: the noise is drawn in the layout each pipeline's ``latents`` argument takes (a UNet's
grid, Z-Image's, FLUX.2 klein's 2×2 patches as channels, FLUX.1's and Qwen-Image's packed
sequences), and inversion gives its estimate back in that same layout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from diffusers import DiffusionPipeline
from visuels.models.noise_mark import noise_bits, payload_for_key
from visuels.models.spec import GenerationJob

SMALLEST = 1e-12  # keeps a uniform draw of exactly 0 from the infinite end of the normal law


def marked_noise(payload: int, key: int, seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Standard normal noise of ``shape`` whose signs carry ``payload`` under ``key`` (float32, CPU)."""
    count = math.prod(shape)
    halves = torch.from_numpy(noise_bits(payload, key, count).astype(np.float64))
    uniform = torch.rand(count, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    quantile = (halves + uniform.clamp(SMALLEST, 1 - SMALLEST)) / 2  # the lower or the upper half
    return torch.special.ndtri(quantile).reshape(shape).float()


def latent_shape(pipeline: DiffusionPipeline, width: int, height: int) -> tuple[int, ...]:
    """The shape of one picture's starting latents, as the pipeline's ``latents`` argument takes
    them for a picture of this size (the transformers' grids rounded to even sizes, as their
    pipelines round them)."""
    unet = getattr(pipeline, "unet", None)
    if unet is not None:
        factor = 2 ** (len(pipeline.vae.config.block_out_channels) - 1)
        return (unet.config.in_channels, height // factor, width // factor)
    channels = pipeline.transformer.config.in_channels
    rows, columns = height // (pipeline.vae_scale_factor * 2), width // (pipeline.vae_scale_factor * 2)
    layout = type(pipeline).__name__
    if layout in ("FluxPipeline", "QwenImagePipeline"):  # packed: one row per 2×2 patch
        return (rows * columns, channels)
    if layout == "Flux2KleinPipeline":  # 2×2 patches as channels, packed by the pipeline
        return (channels, rows, columns)
    return (channels, 2 * rows, 2 * columns)  # Z-Image: the grid itself


def starting_latents(pipeline: DiffusionPipeline, jobs: Sequence[GenerationJob], key: int) -> torch.Tensor:
    """The marked starting noise of each job, as a batch for the pipeline's ``latents`` argument
    (in the UNet's precision; the transformers' pipelines take float32 and cast as they need)."""
    shape = latent_shape(pipeline, jobs[0].generation_width, jobs[0].generation_height)
    noise = [marked_noise(payload_for_key(job.generation_key), key, job.seed, shape) for job in jobs]
    unet = getattr(pipeline, "unet", None)
    return torch.stack(noise).to(pipeline.device, unet.dtype if unet is not None else torch.float32)
