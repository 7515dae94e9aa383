"""What a training step computes for each model family: the latents and text conditioning cached
before the loop, and the loss of one batch.

- SD1.5-architecture UNets (``UnetObjective``): noise added by the DDPM schedule, the target of
  the scheduler's prediction type (noise, velocity or sample), Min-SNR-gamma weights.
- Flow-matching transformers, FLUX.1, FLUX.2 klein, Z-Image and Qwen-Image (``Flux1Objective``,
  ``Flux2KleinObjective``, ``ZImageObjective``, ``QwenImageObjective``): as diffusers' own
  training examples do, a point on the straight path
  x_t = (1 - sigma) x_0 + sigma noise, sigma drawn logit-normal then shifted as the model's
  scheduler shifts it, and the loss on the velocity noise - x_0.

Every random draw takes ``generator`` (the loop's, saved with each checkpoint), in a fixed order,
so a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from diffusers import AutoencoderKL, AutoencoderTiny, DDPMScheduler, DiffusionPipeline
from diffusers.training_utils import compute_snr
from visuels.models.families import Family
from visuels.models.generation import text_encoding
from visuels.models.latent_space import flux2_normalised, qwen_normalised

UNET_TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0"]
# The attention projections: FLUX.2's double blocks' image and text streams, and its single blocks'
# fused attention-and-MLP input layer; Z-Image's (its refiners' and main layers').
FLUX2_TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]
FLUX2_TARGET_MODULES += ["to_qkv_mlp_proj"]
ZIMAGE_TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0"]
# FLUX.1's and Qwen-Image's attention projections, both streams (FLUX.1's single blocks' too).
JOINT_TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]


def _encode(vae: AutoencoderKL | AutoencoderTiny, pixels: torch.Tensor) -> torch.Tensor:
    """Scaled latents of pixels in [-1, 1]; a KL VAE gives its distribution's mean, a tiny VAE its latents."""
    encoded = vae.encode(pixels)
    raw = encoded.latents if isinstance(vae, AutoencoderTiny) else encoded.latent_dist.mean
    return raw * vae.config.scaling_factor


class UnetObjective:
    """Denoising loss of an SD1.5-architecture UNet, text embeddings cached unless the text encoder trains."""

    target_modules = UNET_TARGET_MODULES

    def __init__(self, pipeline: DiffusionPipeline, pixels: torch.Tensor, captions: list[str], min_snr: float | None):
        self.pipeline = pipeline
        self.module = pipeline.unet
        self.scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
        self.min_snr = min_snr
        self.train_text_encoder = False  # set by the trainer once the text encoder has its LoRA
        with torch.no_grad():  # the frozen VAE never runs in the loop, nor does a frozen text encoder
            self.latents = _encode(pipeline.vae, pixels)
            self.tokens = pipeline.tokenizer(
                captions,
                padding="max_length",
                max_length=pipeline.tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids.to(pixels.device)
            self.embeddings = pipeline.text_encoder(self.tokens)[0]

    def __len__(self) -> int:
        return len(self.latents)

    def losses(self, index: torch.Tensor, generator: torch.Generator, autocast) -> torch.Tensor:
        device = self.latents.device
        latents = self.latents[index]
        noise = torch.randn(latents.shape, generator=generator).to(device)
        steps = torch.randint(0, self.scheduler.config.num_train_timesteps, (len(index),), generator=generator)
        noisy = self.scheduler.add_noise(latents, noise, steps.to(device))
        with autocast():
            text = self.pipeline.text_encoder
            embeddings = text(self.tokens[index])[0] if self.train_text_encoder else self.embeddings[index]
            prediction = self.module(noisy, steps.to(device), encoder_hidden_states=embeddings).sample
        target = self._target(latents, noise, steps.to(device))
        per_sample = torch.nn.functional.mse_loss(prediction.float(), target.float(), reduction="none").mean(
            dim=(1, 2, 3)
        )
        if self.min_snr is not None:
            per_sample = per_sample * self._min_snr_weights(steps, self.min_snr).to(device)
        return per_sample

    def _target(self, latents: torch.Tensor, noise: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """What the UNet must predict, for each of diffusers' three prediction types."""
        kind = self.scheduler.config.prediction_type
        if kind == "epsilon":
            return noise
        if kind == "v_prediction":
            return self.scheduler.get_velocity(latents, noise, steps)
        if kind == "sample":
            return latents
        raise ValueError(f"unsupported prediction type {kind!r}")

    def _min_snr_weights(self, steps: torch.Tensor, gamma: float) -> torch.Tensor:
        """Min-SNR-gamma loss weights (Hang et al. 2023), expressed for the scheduler's prediction type."""
        snr = compute_snr(self.scheduler, steps)
        clamped = torch.clamp(snr, max=gamma)
        kind = self.scheduler.config.prediction_type
        if kind == "epsilon":
            return clamped / snr
        if kind == "v_prediction":
            return clamped / (snr + 1)
        return clamped  # the loss is already on the clean sample


class FlowObjective(ABC):
    """The flow-matching loss; a family says how it encodes pictures and captions and calls its transformer."""

    target_modules: list[str]

    def __init__(self, pipeline: DiffusionPipeline, pixels: torch.Tensor, captions: list[str]):
        self.pipeline = pipeline
        self.module = pipeline.transformer
        self.shift = float(pipeline.scheduler.config.get("shift", 1.0))
        with torch.no_grad():  # the VAE and the text encoder are frozen: both run once, here
            self.latents = self._latents(pixels)
            self._conditioning(captions)

    def __len__(self) -> int:
        return len(self.latents)

    def _sigmas(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """Noise levels in (0, 1): logit-normal (Esser et al. 2024), shifted as the scheduler shifts them."""
        sigma = torch.sigmoid(torch.randn(count, generator=generator))
        return self.shift * sigma / (1 + (self.shift - 1) * sigma)

    def losses(self, index: torch.Tensor, generator: torch.Generator, autocast) -> torch.Tensor:
        device = self.latents.device
        clean = self.latents[index]
        noise = torch.randn(clean.shape, generator=generator).to(device)
        sigma = self._sigmas(len(index), generator).to(device)
        noisy = (1 - sigma.view(-1, 1, 1, 1)) * clean + sigma.view(-1, 1, 1, 1) * noise
        with autocast():
            velocity = self._velocity(noisy, sigma, index)
        target = noise - clean
        return torch.nn.functional.mse_loss(velocity.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))

    def _latents(self, pixels: torch.Tensor) -> torch.Tensor:
        """The pictures' latents, as the family's pipeline reads them: a KL VAE's, shifted and
        scaled (FLUX.1, Z-Image); the other families say their own."""
        vae = self.pipeline.vae
        latents = vae.encode(pixels).latent_dist.mode()
        return (latents - vae.config.shift_factor) * vae.config.scaling_factor

    @abstractmethod
    def _conditioning(self, captions: list[str]) -> None:
        """Encode the captions once (the text encoder is frozen)."""

    @abstractmethod
    def _velocity(self, noisy: torch.Tensor, sigma: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The transformer's velocity for ``noisy`` latents at ``sigma``, captions ``index``."""


class Flux2KleinObjective(FlowObjective):
    """FLUX.2 klein: 2x2-patchified latents normalised by the VAE's batch-norm statistics, Qwen3
    embeddings with their position ids, the transformer given sigma as its timestep."""

    target_modules = FLUX2_TARGET_MODULES

    def _latents(self, pixels: torch.Tensor) -> torch.Tensor:
        return flux2_normalised(self.pipeline, self.pipeline.vae.encode(pixels).latent_dist.mode())

    def _conditioning(self, captions: list[str]) -> None:
        self.embeddings, self.text_ids = self.pipeline.encode_prompt(
            prompt=captions, device=self.latents.device, **text_encoding(self.pipeline)
        )

    def _velocity(self, noisy: torch.Tensor, sigma: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        pipeline = self.pipeline
        ids = pipeline._prepare_latent_ids(noisy).to(noisy.device)
        packed = pipeline._pack_latents(noisy)
        guidance = torch.ones(len(index), device=noisy.device) if self.module.config.guidance_embeds else None
        predicted = self.module(
            hidden_states=packed,
            timestep=sigma,
            guidance=guidance,
            encoder_hidden_states=self.embeddings[index],
            txt_ids=self.text_ids[index],
            img_ids=ids,
            return_dict=False,
        )[0]
        return pipeline._unpack_latents_with_ids(predicted[:, : packed.shape[1]], ids)


class ZImageObjective(FlowObjective):
    """Z-Image: shifted and scaled KL latents, Qwen3 embeddings of each caption's own length, the
    transformer given 1 - sigma and answering the negative velocity (as its pipeline reads it)."""

    target_modules = ZIMAGE_TARGET_MODULES

    def _conditioning(self, captions: list[str]) -> None:
        encoding = text_encoding(self.pipeline)
        self.embeddings = self.pipeline.encode_prompt(
            prompt=captions, device=self.latents.device, do_classifier_free_guidance=False, **encoding
        )[0]

    def _velocity(self, noisy: torch.Tensor, sigma: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        frames = list(noisy.unsqueeze(2).unbind(dim=0))  # each picture one frame: [C, 1, H, W]
        captions = [self.embeddings[int(position)] for position in index]
        answers = self.module(frames, 1 - sigma, captions, return_dict=False)[0]
        return -torch.stack([answer.float() for answer in answers]).squeeze(2)


class Flux1Objective(FlowObjective):
    """FLUX.1: shifted and scaled KL latents packed in 2x2 patches, CLIP's pooled text and T5's
    sequence, the transformer given sigma as its timestep (schnell: no guidance input)."""

    target_modules = JOINT_TARGET_MODULES

    def _conditioning(self, captions: list[str]) -> None:
        self.embeddings, self.pooled, self.text_ids = self.pipeline.encode_prompt(
            prompt=captions, prompt_2=None, device=self.latents.device, max_sequence_length=256
        )

    def _velocity(self, noisy: torch.Tensor, sigma: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        pipeline = self.pipeline
        count, channels, height, width = noisy.shape
        packed = pipeline._pack_latents(noisy, count, channels, height, width)
        ids = pipeline._prepare_latent_image_ids(count, height // 2, width // 2, noisy.device, noisy.dtype)
        guidance = torch.full((count,), 3.5, device=noisy.device) if self.module.config.guidance_embeds else None
        predicted = self.module(
            hidden_states=packed,
            timestep=sigma,
            guidance=guidance,
            pooled_projections=self.pooled[index],
            encoder_hidden_states=self.embeddings[index],
            txt_ids=self.text_ids,
            img_ids=ids,
            return_dict=False,
        )[0]
        factor = pipeline.vae_scale_factor
        return pipeline._unpack_latents(predicted, height * factor, width * factor, factor)


class QwenImageObjective(FlowObjective):
    """Qwen-Image: its video VAE's latents of one frame, normalised per channel, packed in 2x2
    patches; Qwen2.5-VL's embeddings with their mask; the transformer given sigma."""

    target_modules = JOINT_TARGET_MODULES

    def _latents(self, pixels: torch.Tensor) -> torch.Tensor:
        vae = self.pipeline.vae
        return qwen_normalised(vae, vae.encode(pixels[:, :, None]).latent_dist.mode())[:, :, 0]  # one frame

    def _conditioning(self, captions: list[str]) -> None:
        self.embeddings, self.mask = self.pipeline.encode_prompt(prompt=captions, device=self.latents.device)

    def _velocity(self, noisy: torch.Tensor, sigma: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        pipeline = self.pipeline
        count, channels, height, width = noisy.shape
        packed = pipeline._pack_latents(noisy, count, channels, height, width)
        predicted = self.module(
            hidden_states=packed,
            timestep=sigma,
            encoder_hidden_states=self.embeddings[index],
            encoder_hidden_states_mask=self.mask[index],
            img_shapes=[[(1, height // 2, width // 2)]] * count,
            return_dict=False,
        )[0]
        factor = pipeline.vae_scale_factor
        return pipeline._unpack_latents(predicted, height * factor, width * factor, factor)[:, :, 0]


def objective_for(
    family: Family, pipeline: DiffusionPipeline, pixels: torch.Tensor, captions: list[str], min_snr: float | None
) -> UnetObjective | FlowObjective:
    """The objective of ``family``, its latents and text conditioning computed."""
    if family.name == "sd15":
        return UnetObjective(pipeline, pixels, captions, min_snr)
    if family.name == "flux2-klein":
        return Flux2KleinObjective(pipeline, pixels, captions)
    if family.name == "z-image":
        return ZImageObjective(pipeline, pixels, captions)
    if family.name == "flux1":
        return Flux1Objective(pipeline, pixels, captions)
    if family.name == "qwen-image":
        return QwenImageObjective(pipeline, pixels, captions)
    raise ValueError(f"no training objective for {family.name}")


TRAINABLE_FAMILIES = ("sd15", "flux1", "flux2-klein", "z-image", "qwen-image")
