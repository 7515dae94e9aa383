"""The models: references described from their files, the demo model, devices, and the model host
that owns a device's diffusers pipelines and generates batches (the only torch and diffusers code
of rendering).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visuels._internal.faces import lazy_attributes

if TYPE_CHECKING:
    from visuels.models.demo import ensure_demo_model
    from visuels.models.devices import choose_device, choose_dtype
    from visuels.models.generation import generate
    from visuels.models.host import GpuMemoryError, ModelHost
    from visuels.models.reference import ModelInfo, describe_model
    from visuels.models.spec import GenerationJob

__all__ = [
    "GenerationJob",
    "GpuMemoryError",
    "ModelHost",
    "ModelInfo",
    "choose_device",
    "choose_dtype",
    "describe_model",
    "ensure_demo_model",
    "generate",
]
__getattr__ = lazy_attributes(
    __name__,
    {
        "reference": ["ModelInfo", "describe_model"],
        "host": ["ModelHost", "GpuMemoryError"],
        "generation": ["generate"],
        "spec": ["GenerationJob"],
        "devices": ["choose_device", "choose_dtype"],
        "demo": ["ensure_demo_model"],
    },
)
