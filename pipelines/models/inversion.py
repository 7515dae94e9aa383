"""Reading the starting-noise mark back from a picture: the model's VAE encodes it, then the sampler
runs backwards with an empty prompt and no guidance, to an estimate of the noise the picture
started from, whose signs carry the mark (``visuels.models.noise_mark.read_bits``). For a UNet,
DDIM inversion (Song et al. 2021; as Gaussian Shading reads its mark); for a flow-matching
transformer (Z-Image), the flow's ODE integrated from the picture (σ 0) to the noise (σ 1) with
Euler steps of the model's own velocity.

It needs the model that made the picture, and the size it was generated at: the picture is
resampled back to it (the export enlarged and cropped it to its format).
"""

from __future__ import annotations

from itertools import pairwise

import cv2
import numpy as np
import torch
from diffusers import DDIMInverseScheduler, DiffusionPipeline
from visuels.models.noise_mark import NoiseReading, read_bits

INVERSION_STEPS = 25  # more follow the sampler more closely; each costs one UNet evaluation


def _as_latents(pipeline: DiffusionPipeline, picture: np.ndarray, width: int, height: int) -> torch.Tensor:
    """The picture at the generation size, encoded by the VAE and scaled as the UNet reads latents."""
    enlarging = width * height > picture.shape[0] * picture.shape[1]
    sized = cv2.resize(picture, (width, height), interpolation=cv2.INTER_CUBIC if enlarging else cv2.INTER_AREA)
    pixels = torch.from_numpy(np.ascontiguousarray(sized)).permute(2, 0, 1)[None].float() / 127.5 - 1
    vae = pipeline.vae
    encoded = vae.encode(pixels.to(pipeline.device, vae.dtype))
    # A KL autoencoder gives a law (its mean is taken); a tiny one (TAESD, the demo's) its latents.
    latents = encoded.latent_dist.mean if hasattr(encoded, "latent_dist") else encoded.latents
    shift = getattr(vae.config, "shift_factor", None) or 0.0  # the flow families' VAEs centre their latents
    return (latents - shift) * vae.config.scaling_factor


def _empty_prompt(pipeline: DiffusionPipeline, width: int, height: int) -> dict:
    """The UNet's conditioning for an empty prompt (SDXL's pooled text and size conditioning too)."""
    device = pipeline.device
    if hasattr(pipeline, "text_encoder_2"):  # SDXL
        embeds, _, pooled, _ = pipeline.encode_prompt("", device=device, do_classifier_free_guidance=False)
        time_ids = pipeline._get_add_time_ids(
            (height, width),
            (0, 0),
            (height, width),
            dtype=embeds.dtype,
            text_encoder_projection_dim=pipeline.text_encoder_2.config.projection_dim,
        ).to(device)
        return {"encoder_hidden_states": embeds, "added_cond_kwargs": {"text_embeds": pooled, "time_ids": time_ids}}
    embeds, _ = pipeline.encode_prompt("", device, 1, False)
    return {"encoder_hidden_states": embeds}


def invert_flow(pipeline: DiffusionPipeline, latents: torch.Tensor, steps: int) -> torch.Tensor:
    """Z-Image's flow run backwards: Euler steps of its velocity from σ 0 (the picture) to σ 1.
    Its pipeline feeds the transformer 1 − σ as the time and steps along the negated output."""
    embeds, _ = pipeline.encode_prompt("", device=pipeline.device, do_classifier_free_guidance=False)
    latents = latents.float()
    sigmas = torch.linspace(0.0, 1.0, steps + 1)
    for sigma, next_sigma in pairwise(sigmas):
        time = (1 - sigma).reshape(1).to(pipeline.device)
        grid = latents.to(pipeline.transformer.dtype).unsqueeze(2)
        output = pipeline.transformer(list(grid.unbind(0)), time, embeds, return_dict=False)[0]
        velocity = -torch.stack([each.float() for each in output]).squeeze(2)
        latents = latents + (next_sigma - sigma) * velocity
    return latents


def recover_noise(
    pipeline: DiffusionPipeline, picture: np.ndarray, width: int, height: int, steps: int = INVERSION_STEPS
) -> np.ndarray:
    """The estimated starting noise of ``picture`` (H×W×3 uint8), generated at ``width`` x ``height``."""
    if getattr(pipeline, "unet", None) is None:
        with torch.inference_mode():
            return invert_flow(pipeline, _as_latents(pipeline, picture, width, height), steps)[0].cpu().numpy()
    own = pipeline.__dict__.get("model_scheduler", pipeline.scheduler)  # the model's, not a campaign's
    # Leading spacing, as diffusers' inversion examples take it (the inverse scheduler has no linspace).
    inverse = DDIMInverseScheduler.from_config(own.config, timestep_spacing="leading")
    inverse.set_timesteps(steps, device=pipeline.device)
    with torch.inference_mode():
        latents = _as_latents(pipeline, picture, width, height).to(pipeline.unet.dtype)
        conditioning = _empty_prompt(pipeline, width, height)
        for timestep in inverse.timesteps:
            predicted = pipeline.unet(latents, timestep, **conditioning).sample
            latents = inverse.step(predicted, timestep, latents).prev_sample
    return latents[0].float().cpu().numpy()


def read_noise_mark(
    pipeline: DiffusionPipeline, picture: np.ndarray, key: int, width: int, height: int
) -> NoiseReading:
    """The starting-noise mark ``picture`` carries under ``key``, as far as inversion recovers it."""
    return read_bits(recover_noise(pipeline, picture, width, height), key)
