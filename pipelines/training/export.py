"""Writing a trained LoRA: diffusers and kohya files with metadata, loss curve, model card."""

from __future__ import annotations

import json
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from diffusers import DiffusionPipeline
from peft.utils import get_peft_model_state_dict
from PIL import Image, ImageDraw
from safetensors import safe_open
from safetensors.torch import load_file, save
from visuels._internal.atomic import write_text_atomic, write_with

DIFFUSERS_FILE = "pytorch_lora_weights.safetensors"
KOHYA_FILE = "lora_kohya.safetensors"
COMFYUI_FILE = "lora_comfyui.safetensors"
HEADER_LENGTH_BYTES = 8  # a safetensors file starts with its JSON header's length
HEADER_ALIGNMENT = 8


def library_versions() -> dict[str, str]:
    return {name: version(name) for name in ("visuels", "torch", "diffusers", "peft", "transformers")}


def _save_safetensors(target: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write ``tensors`` with ``metadata``; the same weights and metadata always give the same bytes.

    safetensors writes its header's metadata in an order that changes from call to call (a Rust
    hash map): the same training would give a new file, so a new LoRA hash in every job key and a
    whole campaign rendered again. The header is written again here, metadata sorted, tensors in
    the order of their data (the library lays the data out by dtype and name)."""
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in tensors.items()}
    data = save(tensors, metadata=metadata)
    length = int.from_bytes(data[:HEADER_LENGTH_BYTES], "little")
    header = json.loads(data[HEADER_LENGTH_BYTES : HEADER_LENGTH_BYTES + length])
    entries = sorted(
        (item for item in header.items() if item[0] != "__metadata__"), key=lambda item: item[1]["data_offsets"]
    )
    ordered = {"__metadata__": dict(sorted(header.get("__metadata__", {}).items())), **dict(entries)}
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % HEADER_ALIGNMENT)  # as the library pads it: the data stays aligned

    def write(temporary: Path) -> None:
        with temporary.open("wb") as file:
            file.write(len(text).to_bytes(HEADER_LENGTH_BYTES, "little") + text)
            file.write(memoryview(data)[HEADER_LENGTH_BYTES + length :])

    write_with(target, write)


def _adapter_config(module: torch.nn.Module) -> dict | None:
    """The module's LoRA configuration (rank, alpha, targets) as peft writes it, or None without a LoRA.
    Its sets (the target modules) are sorted: listed as they are, their order changes per process."""
    configs = getattr(module, "peft_config", None)
    if not configs:
        return None
    config = next(iter(configs.values())).to_dict()
    return {key: sorted(value) if isinstance(value, set) else value for key, value in config.items()}


def export_diffusers(pipeline: DiffusionPipeline, folder: Path, metadata: dict[str, str]) -> Path:
    """The diffusers-format file, as the pipeline's ``save_lora_weights`` writes it, plus our metadata
    in its header (a UNet's and text encoder's LoRA, or a transformer's).

    The header keeps diffusers' own entry with each adapter's configuration: without it a loader
    assumes alpha = rank, and a LoRA trained with another alpha renders at rank/alpha its strength.
    """
    unet = getattr(pipeline, "unet", None)
    if unet is not None:
        layers = {
            "unet_lora_layers": get_peft_model_state_dict(unet),
            "text_encoder_lora_layers": _text_encoder_lora(pipeline),
            "unet_lora_adapter_metadata": _adapter_config(unet),
            "text_encoder_lora_adapter_metadata": _adapter_config(pipeline.text_encoder),
        }
    else:
        layers = {
            "transformer_lora_layers": get_peft_model_state_dict(pipeline.transformer),
            "transformer_lora_adapter_metadata": _adapter_config(pipeline.transformer),
        }
    with tempfile.TemporaryDirectory() as scratch:
        type(pipeline).save_lora_weights(scratch, **layers)
        written = Path(scratch) / DIFFUSERS_FILE
        tensors = load_file(str(written))
        with safe_open(str(written), "pt") as weights:
            header = weights.metadata() or {}
    target = folder / DIFFUSERS_FILE
    _save_safetensors(target, tensors, {**header, **metadata})
    return target


def _text_encoder_lora(pipeline: DiffusionPipeline) -> dict[str, torch.Tensor] | None:
    """The text encoder's LoRA weights, or None when only the UNet was trained."""
    if not getattr(pipeline.text_encoder, "peft_config", None):
        return None
    return get_peft_model_state_dict(pipeline.text_encoder)


def kohya_key(peft_key: str, prefix: str) -> str:
    """``down_blocks.0...attn1.to_q.lora_A.weight`` -> ``lora_unet_down_blocks_0_..._to_q.lora_down.weight``.

    ``prefix`` is ``lora_unet`` for the UNet and ``lora_te`` for the text encoder, whose kohya
    names start with ``text_model`` (the module path before transformers 5 flattened it).
    """
    module, _, rest = peft_key.partition(".lora_")
    if prefix == "lora_te" and not module.startswith("text_model."):
        module = f"text_model.{module}"
    direction = "lora_down" if rest.startswith("A") else "lora_up"
    return f"{prefix}_{module.replace('.', '_')}.{direction}.weight"


def export_kohya(pipeline: DiffusionPipeline, folder: Path, alpha: float, metadata: dict[str, str]) -> Path:
    """The same weights in the kohya / A1111 / ComfyUI layout, with one ``.alpha`` per module (UNet models)."""
    tensors: dict[str, torch.Tensor] = {}
    parts = [("lora_unet", get_peft_model_state_dict(pipeline.unet)), ("lora_te", _text_encoder_lora(pipeline) or {})]
    for prefix, weights in parts:
        for key, value in weights.items():
            converted = kohya_key(key, prefix)
            tensors[converted] = value
            tensors[converted.split(".")[0] + ".alpha"] = torch.tensor(float(alpha))
    target = folder / KOHYA_FILE
    _save_safetensors(target, tensors, {**metadata, "ss_network_dim": metadata["rank"], "ss_network_alpha": str(alpha)})
    return target


def export_comfyui(
    pipeline: DiffusionPipeline, family: str, folder: Path, alpha: float, metadata: dict[str, str]
) -> Path:
    """A transformer's LoRA as ComfyUI loads it.

    FLUX.1: the diffusers module paths under ``transformer.``, with their ``.alpha``, which
    ComfyUI's loader maps through ``comfy.utils.flux_to_diffusers`` onto its original layers (q, k
    and v onto their rows of the fused qkv, the single blocks' onto linear1). Qwen-Image: the
    diffusers module paths under ``diffusion_model.``, with their ``.alpha``: ComfyUI names its
    layers as diffusers does and takes ``diffusion_model.`` weights as they are. Z-Image: the
    diffusers module paths under ``diffusion_model.``, with their ``.alpha``, which ComfyUI's Lumina2 loader
    (``comfy/lora.py``) maps through ``comfy.utils.z_image_to_diffusers`` onto its own layers (to_q,
    to_k, to_v onto their rows of the fused qkv; to_out.0 onto out). FLUX.2 klein: the original
    (BFL) layer names its model keeps, which ComfyUI's loader takes as they are: q, k and v fused
    into one qkv LoRA (their A stacked, their B block-diagonal: the same update, at three times the
    rank), and alpha / rank folded into B (a fused module's rank differs from the others').
    """
    state = get_peft_model_state_dict(pipeline.transformer)
    if family in ("z-image", "flux1", "qwen-image"):
        prefix = "transformer" if family == "flux1" else "diffusion_model"
        tensors: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            tensors[f"{prefix}.{key}"] = value
            tensors[f"{prefix}.{key.partition('.lora_')[0]}.alpha"] = torch.tensor(float(alpha))
    else:
        tensors = _flux2_original_names(state, alpha / int(metadata["rank"]))
    target = folder / COMFYUI_FILE
    _save_safetensors(target, tensors, {**metadata, "ss_network_dim": metadata["rank"], "ss_network_alpha": str(alpha)})
    return target


# FLUX.2's diffusers module (under a double block's ``attn.``) -> its original layer, and which
# diffusers modules one fused original layer holds, in order.
_FLUX2_DOUBLE = {
    "img_attn.qkv": ("to_q", "to_k", "to_v"),
    "img_attn.proj": ("to_out.0",),
    "txt_attn.qkv": ("add_q_proj", "add_k_proj", "add_v_proj"),
    "txt_attn.proj": ("to_add_out",),
}


def _flux2_original_names(state: dict[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """FLUX.2 diffusers-named LoRA weights in its original names, q/k/v fused, ``scale`` in B."""
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        module, _, rest = key.partition(".lora_")
        pairs.setdefault(module, {})[rest[0]] = value  # "A" or "B"
    tensors: dict[str, torch.Tensor] = {}

    def put(name: str, down: torch.Tensor, up: torch.Tensor) -> None:
        tensors[f"diffusion_model.{name}.lora_A.weight"] = down
        tensors[f"diffusion_model.{name}.lora_B.weight"] = up * scale

    for module in sorted(pairs):
        block, _, path = module.partition(".attn.")
        kind, _, index = block.partition(".")
        if kind == "single_transformer_blocks" and path == "to_qkv_mlp_proj":
            put(f"single_blocks.{index}.linear1", pairs[module]["A"], pairs[module]["B"])
            continue
        if kind != "transformer_blocks":
            raise ValueError(f"no ComfyUI name for FLUX.2 module {module}")
        for original, parts in _FLUX2_DOUBLE.items():
            if path == parts[0]:  # the first of a fused layer's parts writes the whole layer
                members = [pairs[f"{block}.attn.{part}"] for part in parts]
                down = torch.cat([member["A"] for member in members])
                up = torch.block_diag(*[member["B"] for member in members])
                put(f"double_blocks.{index}.{original}", down, up)
                break
            if path in parts:
                break
        else:
            raise ValueError(f"no ComfyUI name for FLUX.2 module {module}")
    return tensors


def draw_loss_curve(losses: list[float], target: Path, window: int = 20) -> Path:
    """The loss per step (grey) and its moving average (blue), as a PNG."""
    width, height, pad = 800, 400, 40
    values = np.asarray(losses, dtype=np.float64)
    smooth = np.convolve(values, np.ones(min(window, len(values))) / min(window, len(values)), mode="valid")
    low, high = float(values.min()), float(values.max())
    span = high - low or 1.0

    def points(series: np.ndarray, offset: int) -> list[tuple[float, float]]:
        count = max(len(values) - 1, 1)
        return [
            (pad + (offset + i) / count * (width - 2 * pad), height - pad - (v - low) / span * (height - 2 * pad))
            for i, v in enumerate(series)
        ]

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((pad, pad, width - pad, height - pad), outline=(180, 180, 180))
    draw.line(points(values, 0), fill=(190, 190, 190), width=1)
    draw.line(points(smooth, (len(values) - len(smooth)) // 2), fill=(27, 79, 114), width=3)
    draw.text((pad, 10), f"training loss: {values[:window].mean():.4f} -> {values[-window:].mean():.4f}", fill="black")
    draw.text((pad, height - pad + 10), f"step 1 .. {len(values)}", fill="black")
    write_with(target, lambda temporary: image.save(temporary, format="PNG"))
    return target


def write_model_card(folder: Path, metadata: dict[str, str], community_file: str) -> Path:
    target = folder / "README.md"
    lines = [
        f"# {metadata['charter']} style LoRA",
        "",
        f"Trained by visuels on the charter's {metadata['images']} reference images.",
        f"Trigger word: `{metadata['trigger_word']}`.",
        "",
        "| | |",
        "|---|---|",
        *[f"| {key} | `{value}` |" for key, value in sorted(metadata.items()) if key != "versions"],
        f"| versions | `{metadata['versions']}` |",
        "",
        "Use it in a campaign: `lora: {path: <this folder>/pytorch_lora_weights.safetensors, scale: 0.8}`,",
        "or `lora: {path: charter:latest}`. Validation grids: `validation/`; loss: `loss_curve.png`.",
        "",
    ]
    if community_file == KOHYA_FILE:
        lines += [f"`{KOHYA_FILE}` holds the same weights for A1111 / ComfyUI / kohya tools.", ""]
    elif community_file == COMFYUI_FILE:
        lines += [f"`{COMFYUI_FILE}` holds the same weights in ComfyUI's names (its LoRA loader).", ""]
    write_text_atomic(target, "\n".join(lines))
    return target


def metadata_for(**values: object) -> dict[str, str]:
    """Safetensors headers hold strings only."""
    data = {key: str(value) for key, value in values.items()}
    data["versions"] = json.dumps(library_versions(), sort_keys=True)
    return data
