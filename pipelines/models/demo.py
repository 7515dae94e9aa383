"""The built-in demo model: a tiny Stable Diffusion built from configs with a fixed seed.

It is never downloaded. Built once into the cache folder in diffusers format, then loaded
through the same code as any real checkpoint. The text encoder and UNet have random weights;
the VAE is a TAESD-shaped ``AutoencoderTiny`` whose weights are set by hand so that a latent
holds the blurred colour of its 8x8 patch. Its pictures are smooth colour fields, and a LoRA
trained on reference pictures visibly moves their colours: enough to test training end to end.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderTiny, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
from visuels.config import demo_model_dir
from visuels.errors import SettingsError

log = logging.getLogger(__name__)

DEMO_SEED = 20260802  # the day Article 50 applies
NATIVE_SIZE = 256  # pixels; a 32x32 latent behind the 8x VAE
VAE_CHANNELS = 4  # red, green, blue and one unused channel, at every level of the VAE
# Latents hold (colour - 0.5), in [-0.5, 0.5]; the pipeline multiplies them by this factor so the
# diffusion model sees a spread close to unit variance, as with real VAEs.
VAE_SCALING_FACTOR = 4.0
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


def _set_per_channel(conv: torch.nn.Conv2d, kernel: torch.Tensor, channels: int) -> None:
    """Make ``conv`` apply ``kernel`` to each of the first ``channels`` channels on its own."""
    conv.weight.zero_()
    for channel in range(channels):
        conv.weight[channel, channel] = kernel
    if conv.bias is not None:
        conv.bias.zero_()


@torch.no_grad()
def build_colour_vae() -> AutoencoderTiny:
    """An 8x VAE whose latent is the mean RGB colour of its 8x8 patch, minus 0.5.

    Every residual block's last convolution is zero, so blocks pass their input through (all
    values stay non-negative, so the ReLUs change nothing). The encoder's stride-2 convolutions
    average 2x2 pixels; the decoder up-samples bilinearly. No tap ever reads the zero padding,
    so edges keep their colour.
    """
    vae = AutoencoderTiny(
        encoder_block_out_channels=(VAE_CHANNELS,) * 4,
        decoder_block_out_channels=(VAE_CHANNELS,) * 4,
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=4,
        upsample_fn="bilinear",
        scaling_factor=VAE_SCALING_FACTOR,
    )
    for conv in vae.modules():
        if isinstance(conv, torch.nn.Conv2d):
            conv.weight.zero_()
            if conv.bias is not None:
                conv.bias.zero_()
    copy = torch.zeros(3, 3)
    copy[1, 1] = 1.0
    # With padding 1 and stride 2, taps (1, 1) to (2, 2) read exactly pixels 2i and 2i + 1.
    box = torch.zeros(3, 3)
    box[1:, 1:] = 0.25
    encoder, decoder = list(vae.encoder.layers), list(vae.decoder.layers)
    for layer in encoder:
        if isinstance(layer, torch.nn.Conv2d):
            _set_per_channel(layer, box if layer.stride == (2, 2) else copy, 3)
    encoder[-1].bias[:3] = -0.5  # colour in [0, 1] -> latent in [-0.5, 0.5]
    for layer in decoder:
        if isinstance(layer, torch.nn.Conv2d):
            _set_per_channel(layer, copy, 3)
    decoder[0].bias[:3] = 0.5
    return vae


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
        with torch.no_grad():
            unet.conv_out.bias.zero_()  # a random output bias would tint every picture alike
    vae = build_colour_vae()
    # The UNet predicts the velocity ("v_prediction"), for which the clean latent is mostly the
    # prediction at high noise and mostly the noisy input at low noise. So a random UNet still
    # paints colour fields from pure noise (and a LoRA learns the references' colours there
    # directly, where with noise prediction the random errors dominate), while img2img at a low
    # strength stays close to its source picture, as with a real model.
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        prediction_type="v_prediction",
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


def ensure_demo_model() -> Path:
    """Return the demo model's folder, building it first if it is not there yet."""
    target = demo_model_dir()
    if (target / "model_index.json").is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".demo-model-"))
    except OSError as exc:
        raise SettingsError(
            "VISUELS_CACHE_DIR",
            None,
            "cannot make the demo model's folder in {folder} ({reason}): set VISUELS_CACHE_DIR to a folder"
            " this user may write",
            folder=target.parent,
            reason=exc.strerror or type(exc).__name__,
        ) from None
    log.info("building the demo model in %s", target)
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
