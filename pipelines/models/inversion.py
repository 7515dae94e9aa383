"""Reading the starting-noise mark back from a picture: the model's VAE encodes it, then the sampler
runs backwards (DDIM inversion: Song et al. 2021; as Gaussian Shading reads its mark) with an
empty prompt and no guidance, to an estimate of the noise the picture started from, whose signs
carry the mark (``visuels.models.noise_mark.read_bits``).

It needs the model that made the picture, and the size it was generated at: the picture is
resampled back to it (the export enlarged and cropped it to its format). UNet families only, as
the mark itself.
"""

from __future__ import annotations

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
    return latents * vae.config.scaling_factor


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


def recover_noise(
    pipeline: DiffusionPipeline, picture: np.ndarray, width: int, height: int, steps: int = INVERSION_STEPS
) -> np.ndarray:
    """The estimated starting noise of ``picture`` (H×W×3 uint8), generated at ``width`` x ``height``."""
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
