"""What a user gives: charters, communes files, campaigns, pictures, model references; each
checked on loading, a bad one refused in one line naming its file and field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visuels._internal.faces import lazy_attributes

if TYPE_CHECKING:
    from visuels.inputs.campaign import Campaign, load_campaign
    from visuels.inputs.charter import Charter, load_charter
    from visuels.inputs.communes import Commune, load_communes
    from visuels.inputs.formats import FORMAT_PRESETS, FormatPreset
    from visuels.inputs.images import read_picture
    from visuels.inputs.model_refs import LoraWeights, ModelRef, parse_model_option

__all__ = [
    "FORMAT_PRESETS",
    "Campaign",
    "Charter",
    "Commune",
    "FormatPreset",
    "LoraWeights",
    "ModelRef",
    "load_campaign",
    "load_charter",
    "load_communes",
    "parse_model_option",
    "read_picture",
]
__getattr__ = lazy_attributes(
    __name__,
    {
        "charter": ["Charter", "load_charter"],
        "campaign": ["Campaign", "load_campaign"],
        "communes": ["Commune", "load_communes"],
        "formats": ["FORMAT_PRESETS", "FormatPreset"],
        "images": ["read_picture"],
        "model_refs": ["ModelRef", "LoraWeights", "parse_model_option"],
    },
)
