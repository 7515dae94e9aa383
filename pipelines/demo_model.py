"""The built-in demo model: a tiny Stable Diffusion built from configs with a fixed seed.

It is never downloaded. Built once into the cache folder in diffusers format, then loaded
through the same code as any real checkpoint. Its weights are random, so its pictures are
abstract textures; it exists so that every command runs on a fresh machine.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from pipelines.paths import cache_dir

log = logging.getLogger(__name__)

DEMO_SEED = 20260802  # the day Article 50 applies
DEMO_VERSION = 1  # bump when the architecture below changes
NATIVE_SIZE = 256  # pixels; a 32x32 latent behind the 8x VAE
START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins for bytes used by CLIP's byte-level BPE."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for code in codes]


def build_tokenizer() -> CLIPTokenizer:
    """A byte-level CLIP tokenizer: every byte is a token, no merges, so any text encodes."""
    symbols = _byte_symbols()
    vocab = {symbol: index for index, symbol in enumerate(symbols)}
    vocab.update({f"{symbol}</w>": len(symbols) + index for index, symbol in enumerate(symbols)})
    vocab[START_TOKEN] = len(vocab)
    vocab[END_TOKEN] = len(vocab)
    # Without model_max_length the pipeline's truncation overflows the position embeddings.
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def build_demo_pipeline() -> StableDiffusionPipeline:
    """Build the demo pipeline in memory, deterministically."""
    tokenizer = build_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(DEMO_SEED)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer.get_vocab()),
                hidden_size=64,
                intermediate_size=128,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=77,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
        # Attention only on the 16x16 level: attention over the full latent dominates CPU cost.
        unet = UNet2DConditionModel(
            sample_size=NATIVE_SIZE // 8,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(32, 64),
            layers_per_block=1,
            cross_attention_dim=64,
            attention_head_dim=8,
            norm_num_groups=8,
        )
        # Four blocks, so 8x down-sampling like the VAEs of real Stable Diffusion models.
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(16, 32, 32, 64),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=8,
            sample_size=NATIVE_SIZE,
        )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000, steps_offset=1
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def demo_model_dir() -> Path:
    return cache_dir() / f"demo-model-v{DEMO_VERSION}"


def ensure_demo_model() -> Path:
    """Return the demo model's folder, building it first if it is not there yet."""
    target = demo_model_dir()
    if (target / "model_index.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("building the demo model in %s", target)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".demo-model-"))
    try:
        build_demo_pipeline().save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:
            # Another process finished first: its copy is identical, keep it.
            if not (target / "model_index.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
