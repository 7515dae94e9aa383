"""Stable Diffusion 1.5 and SDXL at full size, built from their configurations with random weights.

No download: the architectures are the published ones (UNet, VAE, CLIP text encoders), the
weights are random, so the pictures are noise but every kernel the real models run is run, at
the real sizes. ``build`` returns a pipeline on a device; ``save`` writes a diffusers folder that
the renderer loads like any real checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
from visuels.models.demo import build_tokenizer

Family = Literal["sd15", "sdxl"]
NATIVE_SIZE = {"sd15": 512, "sdxl": 1024}


def _clip_text(tokenizer_size: int, width: int, layers: int, heads: int, activation: str) -> CLIPTextConfig:
    """A CLIP text tower at full size (77 tokens, CLIP's vocabulary); our byte-level tokenizer's ids fit."""
    return CLIPTextConfig(
        vocab_size=49408,
        hidden_size=width,
        intermediate_size=4 * width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=77,
        hidden_act=activation,
        projection_dim=width,
        bos_token_id=tokenizer_size - 2,
        eos_token_id=tokenizer_size - 1,
    )


def _clip_l(tokenizer_size: int) -> CLIPTextConfig:
    """CLIP ViT-L/14's text tower: SD1.5's encoder and SDXL's first."""
    return _clip_text(tokenizer_size, width=768, layers=12, heads=12, activation="quick_gelu")


def _vae(scaling_factor: float) -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
        scaling_factor=scaling_factor,
    )


def _scheduler() -> EulerDiscreteScheduler:
    return EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000, steps_offset=1
    )


def sd15_unet() -> UNet2DConditionModel:
    """Stable Diffusion 1.5's UNet (860 M parameters), random weights."""
    return UNet2DConditionModel(
        sample_size=64,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=768,
        attention_head_dim=8,
        layers_per_block=2,
    )


def _sd15() -> StableDiffusionPipeline:
    tokenizer = build_tokenizer()
    return StableDiffusionPipeline(
        vae=_vae(0.18215),
        text_encoder=CLIPTextModel(_clip_l(len(tokenizer))),
        tokenizer=tokenizer,
        unet=sd15_unet(),
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _sdxl() -> StableDiffusionXLPipeline:
    tokenizer = build_tokenizer()
    unet = UNet2DConditionModel(
        sample_size=128,
        block_out_channels=(320, 640, 1280),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10),
        attention_head_dim=(5, 10, 20),
        cross_attention_dim=2048,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,
        layers_per_block=2,
    )
    # OpenCLIP ViT-bigG/14's text tower, with its projection: SDXL's second encoder.
    big_g = _clip_text(len(tokenizer), width=1280, layers=32, heads=20, activation="gelu")
    return StableDiffusionXLPipeline(
        vae=_vae(0.13025),
        text_encoder=CLIPTextModel(_clip_l(len(tokenizer))),
        text_encoder_2=CLIPTextModelWithProjection(big_g),
        tokenizer=tokenizer,
        tokenizer_2=build_tokenizer(),
        unet=unet,
        scheduler=_scheduler(),
    )


def build(family: Family, device: str = "cuda", dtype: torch.dtype = torch.float16, seed: int = 0) -> torch.nn.Module:
    """The pipeline with random weights, initialised directly on ``device`` (fast on a GPU)."""
    torch.manual_seed(seed)
    with torch.device(device):
        pipeline = _sd15() if family == "sd15" else _sdxl()
    pipeline.scheduler = _scheduler()  # its tables must stay on the CPU, as when loaded
    pipeline.to(dtype=dtype)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def save(family: Family, folder: Path, device: str = "cuda") -> Path:
    """A diffusers folder of the model in fp16 (as real checkpoints ship), for the renderer to load."""
    if not (folder / "model_index.json").is_file():
        build(family, device, torch.float16).save_pretrained(folder)
    return folder
