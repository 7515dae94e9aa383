"""Reading the starting-noise mark back from a picture: the model's VAE encodes it, then the sampler
runs backwards with an empty prompt and no guidance, to an estimate of the noise the picture
started from, whose signs carry the mark (``visuels.models.noise_mark.read_bits``). For a UNet,
DDIM inversion (Song et al. 2021; as Gaussian Shading reads its mark); for a flow-matching
transformer (FLUX.1, FLUX.2 klein, Z-Image, Qwen-Image), the flow's ODE integrated from the
picture (σ 0) to the noise (σ 1) with Euler steps of the model's own velocity: the family's own
pipeline runs its loop with a scheduler whose σ rise instead of fall, so each family's inputs
(packing, positions, text conditioning, its sign of the velocity) are its pipeline's.

It needs the model that made the picture, and the size it was generated at: the picture is
resampled back to it (the export enlarged and cropped it to its format).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from diffusers import DDIMInverseScheduler, DiffusionPipeline, FlowMatchEulerDiscreteScheduler
from visuels.models.families import family_of_pipeline
from visuels.models.generation import prompt_arguments
from visuels.models.latent_space import flux2_normalised, qwen_normalised
from visuels.models.noise_mark import NoiseReading, read_bits

INVERSION_STEPS = 25  # more follow the sampler more closely; each costs one model evaluation


class RisingFlowScheduler(FlowMatchEulerDiscreteScheduler):
    """Euler steps of a flow from σ 0 to σ 1, evenly spaced: the sampler run backwards. It takes
    the σ a pipeline computes for sampling (and their shift) and sets its own instead."""

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        sigmas: list[float] | None = None,
        mu: float | None = None,
        timesteps: list[float] | None = None,
    ) -> None:
        # A pipeline's sigmas (or timesteps) say how many steps it asked for; their values are a
        # falling schedule, replaced.
        steps = num_inference_steps or len(sigmas if sigmas is not None else timesteps or [0])
        self.num_inference_steps = steps
        self.sigmas = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float32, device=device)
        self.timesteps = self.sigmas[:-1] * self.config.num_train_timesteps
        self._step_index = None
        self._begin_index = None


def _pixels(picture: np.ndarray, width: int, height: int) -> torch.Tensor:
    """The picture at the generation size, as a VAE reads it: (1, 3, H, W) in [-1, 1]."""
    enlarging = width * height > picture.shape[0] * picture.shape[1]
    sized = cv2.resize(picture, (width, height), interpolation=cv2.INTER_CUBIC if enlarging else cv2.INTER_AREA)
    return torch.from_numpy(np.ascontiguousarray(sized)).permute(2, 0, 1)[None].float() / 127.5 - 1


def _encoded(vae: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    encoded = vae.encode(pixels.to(vae.device, vae.dtype))
    # A KL autoencoder gives a law (its mode is taken); a tiny one (TAESD, the demo's) its latents.
    return encoded.latent_dist.mode() if hasattr(encoded, "latent_dist") else encoded.latents


def _as_latents(pipeline: DiffusionPipeline, picture: np.ndarray, width: int, height: int) -> torch.Tensor:
    """The picture encoded by the VAE, in the layout and scale of the pipeline's ``latents`` argument."""
    pixels = _pixels(picture, width, height)
    vae = pipeline.vae
    layout = type(pipeline).__name__
    if layout == "Flux2KleinPipeline":  # its own encoding: 2×2 patches as channels, normalised
        return pipeline._encode_vae_image(pixels.to(vae.device, vae.dtype), generator=None)
    if layout == "QwenImagePipeline":  # a video VAE: one frame; per-channel mean and deviation
        latents = qwen_normalised(vae, _encoded(vae, pixels[:, :, None]))
        return pipeline._pack_latents(latents, 1, latents.shape[1], latents.shape[3], latents.shape[4])
    latents = _encoded(vae, pixels)
    shift = getattr(vae.config, "shift_factor", None) or 0.0  # the flow families' VAEs centre their latents
    latents = (latents - shift) * vae.config.scaling_factor
    if layout == "FluxPipeline":
        return pipeline._pack_latents(latents, 1, latents.shape[1], latents.shape[2], latents.shape[3])
    return latents


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


def invert_flow(
    pipeline: DiffusionPipeline, latents: torch.Tensor, width: int, height: int, steps: int
) -> torch.Tensor:
    """A flow family's latents (its ``latents`` argument's layout) run back to their noise, in the
    same layout: the family's pipeline, an empty prompt, no guidance, σ rising."""
    family = family_of_pipeline(type(pipeline).__name__)
    own = pipeline.scheduler
    pipeline.scheduler = RisingFlowScheduler.from_config(own.config)
    try:
        noise = pipeline(
            # No guidance: Z-Image's scale 0, the distilled families' and Qwen-Image's 1 (no second pass).
            **prompt_arguments(pipeline, family, [""], [""], 0.0 if family.guidance_use == "cfg" else 1.0),
            latents=latents,
            width=width,
            height=height,
            num_inference_steps=steps,
            output_type="latent",
        ).images
    finally:
        pipeline.scheduler = own
    return as_latents_argument(pipeline, noise).float()


def as_latents_argument(pipeline: DiffusionPipeline, latents: torch.Tensor) -> torch.Tensor:
    """What a flow pipeline returns as ``output_type="latent"``, in the layout of its ``latents``
    argument: the same but for FLUX.2 klein, which returns its VAE's latents."""
    if type(pipeline).__name__ != "Flux2KleinPipeline":
        return latents
    return flux2_normalised(pipeline, latents)


def recover_noise(
    pipeline: DiffusionPipeline, picture: np.ndarray, width: int, height: int, steps: int = INVERSION_STEPS
) -> np.ndarray:
    """The estimated starting noise of ``picture`` (H×W×3 uint8), generated at ``width`` x ``height``."""
    if getattr(pipeline, "unet", None) is None:
        with torch.inference_mode():
            latents = _as_latents(pipeline, picture, width, height)
            return invert_flow(pipeline, latents, width, height, steps)[0].cpu().numpy()
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
