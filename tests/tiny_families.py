"""Tiny diffusers folders of the 2026 families (FLUX.1 schnell, FLUX.2 klein, Z-Image, Qwen-Image),
built here from configs with random weights and saved as their publishers ship them (model_index,
component folders, a model card with its licence): models made outside visuels, as a user brings
them. Nothing is downloaded; the tokenizers are byte-level, so any text encodes.

The shapes follow the real families (latent channels, patching, VAE factors, text encoders and
their hidden layers) at a width that renders a 256-pixel picture in about a second on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from visuels.models.demo import build_tokenizer as build_clip_tokenizer

IM_START, IM_END, END = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
# The Qwen chat format, as Qwen3's template writes it (thinking off: an empty think block).
CHAT_TEMPLATE = (
    "{% for message in messages %}" + IM_START + "{{ message.role }}\n{{ message.content }}" + IM_END + "\n"
    "{% endfor %}{% if add_generation_prompt %}" + IM_START + "assistant\n<think>\n\n</think>\n\n{% endif %}"
)


def _byte_symbols() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes (byte-level BPE)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return [chr(byte if byte in printable else next(extra)) for byte in range(256)]


def qwen_tokenizer():
    """A Qwen2 byte-level tokenizer with no merges, the chat tokens and template."""
    from transformers import Qwen2Tokenizer

    vocab = {symbol: index for index, symbol in enumerate(_byte_symbols())}
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], model_max_length=2048)
    tokenizer.add_special_tokens({"additional_special_tokens": [IM_START, IM_END]})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def t5_tokenizer():
    """A T5 unigram tokenizer over single characters (FLUX.1's second tokenizer)."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -1.0)]
    pieces += [(chr(code), -2.0) for code in range(33, 0x250) if chr(code).isprintable()]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def _card(licence: str, name: str | None = None) -> str:
    lines = ["---", f"license: {licence}"] + ([f"license_name: {name}"] if name else []) + ["---", ""]
    return "\n".join(lines) + "A tiny model with random weights, for tests.\n"


def _flow_scheduler(shift: float = 3.0):
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(shift=shift)


def _kl_vae(latent_channels: int, **extra):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(16, 16, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=8,
        **extra,
    )


def flux1_schnell():
    """FLUX.1 [schnell]-shaped: CLIP and T5 text encoders, 16-channel VAE, 2x2 patches."""
    from diffusers import FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    clip, t5 = build_clip_tokenizer(), t5_tokenizer()
    return FluxPipeline(
        scheduler=_flow_scheduler(1.0),
        vae=_kl_vae(16, scaling_factor=0.3611, shift_factor=0.1159),
        text_encoder=CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(clip),
                hidden_size=32,
                intermediate_size=37,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=77,
                projection_dim=32,
                bos_token_id=len(clip) - 2,
                eos_token_id=len(clip) - 1,
            )
        ),
        tokenizer=clip,
        text_encoder_2=T5EncoderModel(
            T5Config(vocab_size=len(t5), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4)
        ),
        tokenizer_2=t5,
        transformer=FluxTransformer2DModel(
            patch_size=1,
            in_channels=64,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,
            pooled_projection_dim=32,
            axes_dims_rope=(4, 6, 6),
            guidance_embeds=False,
        ),
    )


def flux2_klein():
    """FLUX.2 [klein]-shaped: a Qwen3 text encoder read at three hidden layers, 32-channel VAE."""
    from diffusers import AutoencoderKLFlux2, Flux2KleinPipeline, Flux2Transformer2DModel
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = qwen_tokenizer()
    hidden = 16
    encoder = Qwen3ForCausalLM(
        Qwen3Config(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            intermediate_size=32,
            num_hidden_layers=28,  # the pipeline reads layers 9, 18 and 27
            num_attention_heads=2,
            num_key_value_heads=2,
            head_dim=8,
            max_position_embeddings=1024,
        )
    )
    return Flux2KleinPipeline(
        scheduler=_flow_scheduler(),
        vae=AutoencoderKLFlux2(
            block_out_channels=(16, 16, 16, 16),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=1,
            latent_channels=32,
            norm_num_groups=8,
        ),
        text_encoder=encoder,
        tokenizer=tokenizer,
        transformer=Flux2Transformer2DModel(
            patch_size=1,
            in_channels=128,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=3 * hidden,
            timestep_guidance_channels=256,
            axes_dims_rope=(4, 4, 4, 4),
            guidance_embeds=False,
        ),
        is_distilled=True,
    )


def z_image():
    """Z-Image-shaped: a Qwen3 text encoder, 16-channel VAE, a single-stream transformer."""
    from diffusers import ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    tokenizer = qwen_tokenizer()
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=16,
        dim=32,
        n_layers=2,
        n_refiner_layers=1,
        n_heads=2,
        n_kv_heads=2,
        qk_norm=True,
        cap_feat_dim=16,
        rope_theta=256.0,
        axes_dims=[8, 4, 4],
        axes_lens=[1024, 512, 512],
    )
    with torch.no_grad():  # made with torch.empty: give them values
        transformer.x_pad_token.normal_()
        transformer.cap_pad_token.normal_()
    return ZImagePipeline(
        scheduler=_flow_scheduler(),
        vae=_kl_vae(16, scaling_factor=0.3611, shift_factor=0.1159),
        text_encoder=Qwen3Model(
            Qwen3Config(
                vocab_size=len(tokenizer),
                hidden_size=16,
                intermediate_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                num_key_value_heads=2,
                head_dim=8,
                max_position_embeddings=1024,
            )
        ),
        tokenizer=tokenizer,
        transformer=transformer,
    )


def qwen_image():
    """Qwen-Image-shaped: a Qwen2.5-VL text encoder, its causal video VAE, true CFG."""
    from diffusers import AutoencoderKLQwenImage, QwenImagePipeline, QwenImageTransformer2DModel
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer = qwen_tokenizer()
    config = Qwen2_5_VLConfig(
        text_config={
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "vocab_size": len(tokenizer),
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
        },
        vision_config={"depth": 1, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": 16},
        hidden_size=16,
        vocab_size=len(tokenizer),
    )
    return QwenImagePipeline(
        scheduler=_flow_scheduler(),
        vae=AutoencoderKLQwenImage(
            base_dim=16,
            z_dim=16,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
            latents_mean=[0.0] * 16,
            latents_std=[1.0] * 16,
        ),
        text_encoder=Qwen2_5_VLForConditionalGeneration(config).eval(),
        tokenizer=tokenizer,
        transformer=QwenImageTransformer2DModel(
            patch_size=2,
            in_channels=64,
            out_channels=16,
            num_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=16,
            guidance_embeds=False,
            axes_dims_rope=(8, 4, 4),
        ),
    )


VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")


def save_tiny_edit_model(
    folder: Path, licence: str = "apache-2.0", pipeline_class: str = "QwenImageEditPlusPipeline"
) -> Path:
    """A tiny Qwen-Image-Edit-2509-shaped folder (``QwenImageEditPipeline``: the first
    Qwen-Image-Edit's) as its publisher ships it: Qwen-Image's tiny transformer and VAE, a
    Qwen2.5-VL text encoder that sees pictures (its vision tokens in the tokenizer), and a
    ``processor`` folder naming transformers' Qwen2VLProcessor."""
    import json

    import diffusers
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        base = qwen_image()
        tokenizer = qwen_tokenizer()
        tokenizer.add_special_tokens({"additional_special_tokens": [IM_START, IM_END, *VISION_TOKENS]})
        ids = [tokenizer.convert_tokens_to_ids(token) for token in VISION_TOKENS]
        config = base.text_encoder.config.to_dict()
        config["text_config"]["vocab_size"] = config["vocab_size"] = len(tokenizer)
        names = ("vision_start_token_id", "vision_end_token_id", "image_token_id", "video_token_id")
        config |= dict(zip(names, ids, strict=True))
        text_encoder = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**config)).eval()
    # Saved without a processor (transformers' would need torchvision here), which is then written
    # as the published folders have it: tokenizer files and the image processor's settings.
    pipeline = getattr(diffusers, pipeline_class)(
        scheduler=base.scheduler,
        vae=base.vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        processor=None,
        transformer=base.transformer,
    )
    pipeline.save_pretrained(folder)
    tokenizer.save_pretrained(folder / "processor")
    settings = Qwen2VLImageProcessorPil().to_dict() | {
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2VLProcessor",
    }
    (folder / "processor" / "preprocessor_config.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    index["processor"] = ["transformers", "Qwen2VLProcessor"]
    (folder / "model_index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    (folder / "README.md").write_text(_card(licence), encoding="utf-8")
    return folder


# family name -> (builder, licence on its card, licence_name)
FAMILIES: dict[str, tuple[Callable[[], object], str, str | None]] = {
    "flux1": (flux1_schnell, "apache-2.0", None),
    "flux2-klein": (flux2_klein, "apache-2.0", None),
    "z-image": (z_image, "apache-2.0", None),
    "qwen-image": (qwen_image, "apache-2.0", None),
}


# The shapes diffusers' own pipeline tests give their dummy components (a tester's likeliest tiny
# model): VAEs of one or two blocks, text encoders of two layers, Z-Image's position tables 32
# patches wide. The hub's test tokenizers are replaced by the byte-level ones above.
def _test_shaped_flux1():
    from diffusers import AutoencoderKL, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    clip, t5 = build_clip_tokenizer(), t5_tokenizer()
    return FluxPipeline(
        scheduler=_flow_scheduler(),
        text_encoder=CLIPTextModel(
            CLIPTextConfig(
                hidden_size=32,
                intermediate_size=37,
                num_attention_heads=4,
                num_hidden_layers=5,
                vocab_size=len(clip),
                projection_dim=32,
            )
        ),
        text_encoder_2=T5EncoderModel(T5Config(vocab_size=len(t5), d_model=32, d_kv=8, d_ff=37, num_layers=5)),
        tokenizer=clip,
        tokenizer_2=t5,
        transformer=FluxTransformer2DModel(
            patch_size=1,
            in_channels=4,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,
            pooled_projection_dim=32,
            axes_dims_rope=[4, 4, 8],
        ),
        vae=AutoencoderKL(
            sample_size=32,
            block_out_channels=(4,),
            layers_per_block=1,
            latent_channels=1,
            norm_num_groups=1,
            use_quant_conv=False,
            use_post_quant_conv=False,
            shift_factor=0.0609,
            scaling_factor=1.5035,
        ),
    )


def _test_shaped_qwen3():
    """The two-layer Qwen3 text encoder of diffusers' FLUX.2 klein and Z-Image tests, at Qwen's vocabulary."""
    from transformers import Qwen3Config

    return Qwen3Config(
        hidden_size=16,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=151936,
        max_position_embeddings=512,
    )


def _test_shaped_klein():
    from diffusers import AutoencoderKLFlux2, Flux2KleinPipeline, Flux2Transformer2DModel
    from transformers import Qwen3ForCausalLM

    return Flux2KleinPipeline(
        scheduler=_flow_scheduler(),
        text_encoder=Qwen3ForCausalLM(_test_shaped_qwen3()),
        tokenizer=qwen_tokenizer(),
        transformer=Flux2Transformer2DModel(
            patch_size=1,
            in_channels=4,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=16,
            timestep_guidance_channels=256,
            axes_dims_rope=[4, 4, 4, 4],
            guidance_embeds=False,
        ),
        vae=AutoencoderKLFlux2(
            sample_size=32,
            down_block_types=("DownEncoderBlock2D",),
            up_block_types=("UpDecoderBlock2D",),
            block_out_channels=(4,),
            layers_per_block=1,
            latent_channels=1,
            norm_num_groups=1,
            use_quant_conv=False,
            use_post_quant_conv=False,
        ),
    )


def _test_shaped_z_image():
    from diffusers import AutoencoderKL, ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Model

    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=16,
        dim=32,
        n_layers=2,
        n_refiner_layers=1,
        n_heads=2,
        n_kv_heads=2,
        cap_feat_dim=16,
        axes_dims=[8, 4, 4],
        axes_lens=[256, 32, 32],
    )
    with torch.no_grad():  # left uninitialised (torch.empty) by its constructor
        transformer.x_pad_token.fill_(1.0)
        transformer.cap_pad_token.fill_(1.0)
    return ZImagePipeline(
        scheduler=_flow_scheduler(),
        text_encoder=Qwen3Model(_test_shaped_qwen3()),
        tokenizer=qwen_tokenizer(),
        transformer=transformer,
        vae=AutoencoderKL(
            down_block_types=["DownEncoderBlock2D"] * 2,
            up_block_types=["UpDecoderBlock2D"] * 2,
            block_out_channels=[32, 64],
            layers_per_block=1,
            latent_channels=16,
            norm_num_groups=32,
            sample_size=32,
            scaling_factor=0.3611,
            shift_factor=0.1159,
        ),
    )


def _test_shaped_qwen_image():
    from diffusers import AutoencoderKLQwenImage, QwenImagePipeline, QwenImageTransformer2DModel
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    text = {
        "hidden_size": 16,
        "intermediate_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default"},
    }
    vision = {"depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": 16}
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, hidden_size=16, vocab_size=152064)
    return QwenImagePipeline(
        scheduler=_flow_scheduler(),
        text_encoder=Qwen2_5_VLForConditionalGeneration(config).eval(),
        tokenizer=qwen_tokenizer(),
        transformer=QwenImageTransformer2DModel(
            patch_size=2,
            in_channels=16,
            out_channels=4,
            num_layers=2,
            attention_head_dim=16,
            num_attention_heads=3,
            joint_attention_dim=16,
            guidance_embeds=False,
            axes_dims_rope=(8, 4, 4),
        ),
        vae=AutoencoderKLQwenImage(
            base_dim=24,
            z_dim=4,
            dim_mult=[1, 2, 4],
            num_res_blocks=1,
            temperal_downsample=[False, True],
            latents_mean=[0.0] * 4,
            latents_std=[1.0] * 4,
        ),
    )


TEST_SHAPED: dict[str, Callable[[], object]] = {
    "flux1": _test_shaped_flux1,
    "flux2-klein": _test_shaped_klein,
    "z-image": _test_shaped_z_image,
    "qwen-image": _test_shaped_qwen_image,
}


def save_test_shaped(family: str, folder: Path) -> Path:
    """``family``'s pipeline shaped as diffusers' own tests make it, saved with an Apache-2.0 card."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        pipeline = TEST_SHAPED[family]()
    pipeline.save_pretrained(folder)
    (folder / "README.md").write_text(_card("apache-2.0"), encoding="utf-8")
    return folder


def save_tiny(family: str, folder: Path, licence: str | None = None, licence_name: str | None = None) -> Path:
    """Build ``family``'s tiny pipeline (seeded: the same weights every time) and save it to
    ``folder`` with a model card naming its licence (``licence`` replaces the family's)."""
    build, card_licence, card_name = FAMILIES[family]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        pipeline = build()
    pipeline.save_pretrained(folder)
    if licence is None:
        licence, licence_name = card_licence, card_name
    (folder / "README.md").write_text(_card(licence, licence_name), encoding="utf-8")
    return folder


def save_random_controlnet(controlnet: torch.nn.Module, zero_started: list[torch.nn.Module], folder: Path) -> Path:
    """Give a tiny ControlNet's zero-started projections random weights (so a photo's edges do
    steer) and save it as a diffusers folder, like a real one."""
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for layer in zero_started:
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * 0.05)
    controlnet.save_pretrained(folder)
    return folder
