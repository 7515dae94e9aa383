"""The latent spaces the flow families' transformers work in, from their VAEs' own latents: what
rendering, reading the starting-noise mark back and training all need the same way."""

from __future__ import annotations

import torch
from diffusers import DiffusionPipeline


def flux2_normalised(pipeline: DiffusionPipeline, vae_latents: torch.Tensor) -> torch.Tensor:
    """FLUX.2's: its VAE's latents in 2x2 patches as channels, normalised by the VAE's batch-norm
    statistics (as its pipeline encodes a picture)."""
    vae = pipeline.vae
    patched = pipeline._patchify_latents(vae_latents)
    mean = vae.bn.running_mean.view(1, -1, 1, 1).to(patched)
    deviation = torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps).to(patched)
    return (patched - mean) / deviation


def qwen_normalised(vae: torch.nn.Module, vae_latents: torch.Tensor) -> torch.Tensor:
    """Qwen-Image's: its video VAE's latents (batch, channels, frames, height, width), normalised
    per channel."""
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1).to(vae_latents)
    deviation = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1).to(vae_latents)
    return (vae_latents - mean) / deviation
