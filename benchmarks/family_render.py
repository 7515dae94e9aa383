"""Generation speed of the 2026 families on a GPU, through visuels' own generation code.

    python -m benchmarks.family_render                    # every family, full size, on CUDA (bf16)
    python -m benchmarks.family_render --family flux2-klein z-image --batch 1 4
    python -m benchmarks.family_render --tiny             # proves the script runs (CPU, tiny models)
    python -m benchmarks.family_render --family flux1 --first-block-cache 0.1 --float8   # speed options too

Each family is built from its published architecture with random weights, directly on the GPU in
bf16 (nothing downloaded: real kernels at real sizes, noise for pictures), then timed through
``visuels.models.generation.generate`` at its native size with its own default steps and guidance
(``visuels.models.families``): images/s after a warm-up call, and peak GPU memory. The text
encoders are the families' (CLIP-L and T5-XXL, Qwen3-4B, Qwen2.5-VL-7B), run for every batch as
the renderer runs them. This is the generation stage alone: the CPU stage (post-processing, marks,
encoding) is ``benchmarks/cpu_stage.py``'s, the same for every family at a given output size.
Full-size weights need the GPU machine's memory (Qwen-Image: about 56 GB in bf16).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from visuels.models.families import family_named
from visuels.models.float8 import to_float8
from visuels.models.generation import generate

FAMILIES = ("flux1", "flux2-klein", "z-image", "qwen-image")
PROMPT = "a sunny square in a small town of Occitanie, plane trees, people at a cafe"


@dataclass(frozen=True)
class Job:
    """The fields of a render job that generation reads (``visuels.models.spec.GenerationJob``)."""

    prompt: str
    negative_prompt: str
    seed: int
    generation_width: int
    generation_height: int
    steps: int
    guidance: float
    scheduler: str = "default"
    guidance_cutoff: None = None
    deep_cache: None = None
    first_block_cache: float | None = None
    noise_mark: None = None
    generation_key: str = ""
    photo: None = None
    hires: None = None
    photo_mode: None = None
    key_visual: None = None
    relative_path: str = "benchmark"


@dataclass
class Measurement:
    family: str
    size: int
    steps: int
    batch: int
    images_per_s: float
    peak_gib: float
    first_block_cache: float | None = None
    precision: str = "bfloat16"


def _qwen3_4b():
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=151936,
        hidden_size=2560,
        intermediate_size=9728,
        num_hidden_layers=36,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=40960,
    )


def _flux_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=16,
        scaling_factor=0.3611,
        shift_factor=0.1159,
    )


def full_size(family: str):
    """The family's pipeline at its published size (diffusers' defaults are the released models'
    configurations where noted), random weights, on the current default device and dtype."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from tests.tiny_families import qwen_tokenizer, t5_tokenizer

    if family == "flux1":  # FLUX.1 [schnell]: 12 B transformer (diffusers' defaults), CLIP-L, T5-XXL
        from diffusers import FluxPipeline, FluxTransformer2DModel
        from transformers import CLIPTextModel, T5Config, T5EncoderModel
        from visuels.models.demo import build_tokenizer

        from benchmarks.full_size_models import _clip_l

        clip = build_tokenizer()
        t5 = T5Config(
            vocab_size=32128,
            d_model=4096,
            d_kv=64,
            d_ff=10240,
            num_layers=24,
            num_heads=64,
            feed_forward_proj="gated-gelu",
        )
        return FluxPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
            vae=_flux_vae(),
            text_encoder=CLIPTextModel(_clip_l(len(clip))),
            tokenizer=clip,
            text_encoder_2=T5EncoderModel(t5),
            tokenizer_2=t5_tokenizer(),
            transformer=FluxTransformer2DModel(guidance_embeds=False),
        )
    if family == "flux2-klein":  # FLUX.2 [klein] 4B: 5 double and 20 single blocks, Qwen3-4B
        from diffusers import AutoencoderKLFlux2, Flux2KleinPipeline, Flux2Transformer2DModel
        from transformers import Qwen3ForCausalLM

        return Flux2KleinPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=False),
            vae=AutoencoderKLFlux2(),
            text_encoder=Qwen3ForCausalLM(_qwen3_4b()),
            tokenizer=qwen_tokenizer(),
            transformer=Flux2Transformer2DModel(
                num_layers=5,
                num_single_layers=20,
                num_attention_heads=24,
                attention_head_dim=128,
                joint_attention_dim=3 * 2560,
                guidance_embeds=False,
            ),
            is_distilled=True,
        )
    if family == "z-image":  # Z-Image: 6 B single-stream transformer (diffusers' defaults), Qwen3-4B
        from diffusers import ZImagePipeline, ZImageTransformer2DModel
        from transformers import Qwen3Model

        return ZImagePipeline(
            scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
            vae=_flux_vae(),
            text_encoder=Qwen3Model(_qwen3_4b()),
            tokenizer=qwen_tokenizer(),
            transformer=ZImageTransformer2DModel(),
        )
    if family == "qwen-image":  # Qwen-Image: 20 B transformer and its VAE (diffusers' defaults), Qwen2.5-VL-7B
        from diffusers import AutoencoderKLQwenImage, QwenImagePipeline, QwenImageTransformer2DModel
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

        text = {
            "vocab_size": 152064,
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "rope_scaling": {"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"},
        }
        config = Qwen2_5_VLConfig(text_config=text, vocab_size=152064, hidden_size=3584)
        return QwenImagePipeline(
            scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
            vae=AutoencoderKLQwenImage(),
            text_encoder=Qwen2_5_VLForConditionalGeneration(config).eval(),
            tokenizer=qwen_tokenizer(),
            transformer=QwenImageTransformer2DModel(),
        )
    raise ValueError(family)


def build(family: str, tiny: bool):
    """The pipeline: full size on CUDA in bf16, or the tests' tiny model on the CPU."""
    if tiny:
        from tests.tiny_families import FAMILIES as TINY

        pipeline = TINY[family][0]()
    else:
        torch.manual_seed(0)
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)
        try:
            with torch.device("cuda"):
                pipeline = full_size(family)
        finally:
            torch.set_default_dtype(default)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def measure(
    family: str,
    batches: list[int],
    tiny: bool,
    calls: int,
    step_counts: list[int],
    cache: float | None = None,
    float8: bool = False,
) -> list[Measurement]:
    """Images/s per batch size and step count (none given: the family's default steps); with
    ``cache``, also under First Block Cache at that threshold where the family takes it; with
    ``float8``, all again with the transformer's linear layers in FP8 (``visuels.models.float8``)."""
    defaults = family_named(family)
    size = 256 if tiny else defaults.native_size
    pipeline = build(family, tiny)
    results = []
    caches = [None, cache] if cache is not None and defaults.first_block_cache else [None]
    base = "float32" if tiny else "bfloat16"  # the tiny models run in float32 on the CPU
    for precision in (base, "float8") if float8 else (base,):
        if precision == "float8":
            to_float8(pipeline.transformer)
        for batch, steps, threshold in (
            (batch, steps, threshold)
            for batch in batches
            for steps in step_counts or [defaults.steps]
            for threshold in caches
        ):
            jobs = [
                Job(PROMPT, "blurry", seed, size, size, steps, defaults.guidance, first_block_cache=threshold)
                for seed in range(batch)
            ]
            cuda = torch.cuda.is_available() and not tiny
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            try:
                generate(pipeline, jobs)  # warm-up: allocator, kernels' autotuning
                started = time.perf_counter()
                for _ in range(calls):
                    generate(pipeline, jobs)
                seconds = (time.perf_counter() - started) / calls
            except torch.cuda.OutOfMemoryError:
                print(f"{family} batch {batch}: out of memory", flush=True)
                torch.cuda.empty_cache()
                continue
            peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
            results.append(Measurement(family, size, steps, batch, batch / seconds, peak, threshold, precision))
            print(asdict(results[-1]), flush=True)
    del pipeline
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--calls", type=int, default=2, help="timed calls per batch size, after one warm-up")
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny models on the CPU: proves the script runs")
    parser.add_argument(
        "--steps",
        nargs="+",
        type=int,
        default=[],
        help="step counts instead of the family's default (two counts give the cost per step and the fixed cost)",
    )
    parser.add_argument(
        "--first-block-cache", type=float, help="also measure First Block Cache at this threshold (FLUX.1, Qwen-Image)"
    )
    parser.add_argument("--float8", action="store_true", help="also measure the transformer's linear layers in FP8")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "family_render.json")
    args = parser.parse_args()
    if not args.tiny and not torch.cuda.is_available():
        parser.error("needs CUDA (or --tiny)")
    results = []
    for family in args.family:
        measured = measure(family, args.batch, args.tiny, args.calls, args.steps, args.first_block_cache, args.float8)
        results += [asdict(item) for item in measured]
    device = "cpu" if args.tiny else torch.cuda.get_device_name()
    versions = {name: __import__(name).__version__ for name in ("torch", "diffusers", "transformers")}
    args.out.write_text(json.dumps({"device": device, "versions": versions, "results": results}, indent=1))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
