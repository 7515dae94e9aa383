"""A LoRA file's factors as diffusers would load them, read from its header alone.

LoRAs come in several layouts: diffusers' own, kohya's and A1111's (``lora_unet_…``, ``lora_te_…``),
ComfyUI's (``diffusion_model.…``), the original model's layer names (BFL's fused ``qkv``). diffusers
converts each when it loads one. Here its own conversion runs on tensors that hold shapes and no
data (PyTorch's ``meta`` device; only the small ``alpha`` scalars are read), so the layers a LoRA
names and their widths can be checked against a model's files before anything loads: a LoRA for
another model is refused when a campaign is checked, not when the night's run loads it.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

from safetensors import safe_open
from visuels._internal.json_text import read_json

# How peft names a layer's two factors, and which axis of the layer's weight each must match:
# A reads the layer's input (its weight's axis 1), B writes its output (axis 0).
PEFT_FACTORS = ((".lora_A.weight", 1), (".lora_B.weight", 0))
COMPONENTS = ("unet", "transformer", "text_encoder", "text_encoder_2")


def lora_factors(
    path: Path, pipeline_class: str, unet_config: dict | None
) -> dict[str, dict[str, tuple[int, ...]]] | None:
    """The shapes of the LoRA's factors by component (``unet``, ``text_encoder``…), each by its peft
    name within the component (``down_blocks.0.….to_q.lora_A.weight``), as ``pipeline_class``
    would load them (``unet_config``: a UNet's, which maps kohya's SDXL block names). None where
    that cannot be told from the file (a pickle, a layout the conversion does not take on shapes
    alone): loading it then says whether it fits. Empty: no weight of it is for this pipeline's components."""
    import diffusers  # here: the CPU stage's processes import planning, and never torch
    import torch
    from diffusers.configuration_utils import FrozenDict

    loader = getattr(getattr(diffusers, pipeline_class, None), "lora_state_dict", None)
    if path.suffix != ".safetensors" or loader is None:
        return None
    with safe_open(str(path), "pt") as weights:
        shapes = {name: weights.get_slice(name).get_shape() for name in list(weights.keys())}
        shaped = {
            # an alpha (a scalar: never a large tensor from an untrusted file) is read, as conversions
            # divide by it; every other tensor is only its shape
            name: weights.get_tensor(name)
            if name.endswith(".alpha") and math.prod(shape) <= 1
            else torch.empty(shape, device="meta")
            for name, shape in shapes.items()
        }
    options = {"unet_config": FrozenDict(unet_config)} if unet_config is not None else {}
    logger = logging.getLogger("diffusers")  # its conversions warn of every key they leave out
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                loaded = loader(shaped, **options)
                state = loaded[0] if isinstance(loaded, tuple) else loaded
                converted = {component: _in_peft_names(component, state) for component in COMPONENTS}
            except Exception:  # a layout it cannot convert: left to loading, which says it in one line
                return None
            return {
                component: {
                    name: tuple(value.shape)
                    for name, value in weights.items()
                    if isinstance(value, torch.Tensor) and name.endswith(tuple(end for end, _ in PEFT_FACTORS))
                }
                for component, weights in converted.items()
                if weights
            }
    finally:
        logger.setLevel(level)


def _in_peft_names(component: str, state: dict) -> dict:
    """The component's part of a loader's state dict, named as peft names its layers (as the
    pipeline's loading converts it, and raises where it does)."""
    from diffusers.utils.state_dict_utils import (
        convert_state_dict_to_diffusers,
        convert_state_dict_to_peft,
        convert_unet_state_dict_to_peft,
    )

    prefix = f"{component}."
    mine = {name[len(prefix) :]: value for name, value in state.items() if name.startswith(prefix)}
    if not mine or any(".lora_A." in name for name in mine):
        return mine
    if component.startswith("text_encoder"):
        return convert_state_dict_to_peft(convert_state_dict_to_diffusers(mine))
    return convert_unet_state_dict_to_peft(mine)  # older names: lora.down, to_q_lora


def shapes_from_config(folder: Path, component: str) -> dict[str, tuple[int, ...]]:
    """The shapes of a component's weights by name, from its config alone (the model built on
    PyTorch's ``meta`` device, no memory, no weights): a single-file checkpoint's config folder,
    whose own file names its weights in the original layout. Empty where the folder's
    ``model_index.json`` names no such component."""
    import importlib

    import torch

    index = read_json(folder / "model_index.json")
    library, class_name = (index.get(component) or [None, None])[:2]
    if library not in ("diffusers", "transformers") or not (folder / component).is_dir():
        return {}
    model_class = getattr(importlib.import_module(library), class_name)
    with torch.device("meta"):
        if library == "diffusers":
            model = model_class.from_config(model_class.load_config(folder / component))
        else:
            from transformers import AutoConfig

            model = model_class(AutoConfig.from_pretrained(folder / component))
    return {name.removeprefix("text_model."): tuple(value.shape) for name, value in model.state_dict().items()}
