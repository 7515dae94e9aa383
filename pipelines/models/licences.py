"""A model's licence, read from its own files, and whether a region may publish what it makes.

Where a licence is read: the model card's metadata (``README.md``'s front matter: ``license``, and
``license_name`` when that says ``other``), as the Hugging Face hub and every publisher's folder
carry it; for a single-file checkpoint, its safetensors header's ``modelspec.license``. A campaign
may declare the licence of a model whose files do not say (``model_licence.licence``).

What a licence allows (``Licence.use``) is this project's reading of each licence text, listed in
docs/models.md with its sources; it is not legal advice. Licences not in the table are ``unknown``:
``visuels doctor`` and ``visuels check`` say so, and the region decides.
"""

from __future__ import annotations

import itertools
import re
import struct
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict
from visuels._internal.json_text import loads

LicenceUse = Literal["publishable", "non_commercial", "research_only", "revenue_capped", "unknown"]
REFUSED_USES: tuple[LicenceUse, ...] = ("non_commercial", "research_only", "revenue_capped")

# Licence ids as model cards write them (lowercase), and what each allows a public body to publish.
KNOWN_LICENCES: dict[str, LicenceUse] = {
    "apache-2.0": "publishable",
    "mit": "publishable",
    "bsd-2-clause": "publishable",
    "bsd-3-clause": "publishable",
    "cc0-1.0": "publishable",
    "cc-by-4.0": "publishable",
    "cc-by-sa-4.0": "publishable",
    "creativeml-openrail-m": "publishable",  # SD1.5: use restrictions (attachment A), outputs free
    "openrail": "publishable",
    "openrail++": "publishable",  # SDXL, SDXL-Lightning, LCM-LoRA
    "openrail++-m": "publishable",
    "bigscience-openrail-m": "publishable",
    "flux-1-dev-non-commercial-license": "non_commercial",  # FLUX.1 dev
    "flux-dev-non-commercial-license": "non_commercial",
    "flux-non-commercial-license": "non_commercial",  # FLUX.2 dev, FLUX.2 klein 9B
    "stabilityai-ai-community": "revenue_capped",  # SD3.5: free under US$1M revenue
    "stabilityai-community": "revenue_capped",
    "sai-nc-community": "non_commercial",  # SDXL-Turbo, SD-Turbo
    "nvidia-open-model-license": "publishable",
    "nsclv1": "non_commercial",  # NVIDIA source code licence (Sana)
    "cc-by-nc-4.0": "non_commercial",
    "cc-by-nc-sa-4.0": "non_commercial",
    "cc-by-nc-nd-4.0": "non_commercial",
}
# Words that make an unlisted licence's name refuse publication on their own.
_REFUSING_WORDS = (
    (re.compile(r"(^|[-_ ])(nc|non-?commercial)([-_ ]|$)"), "non_commercial"),
    (re.compile(r"research"), "research_only"),
)


class Licence(BaseModel):
    """A model's licence as known: its id, what it allows, and where it was read."""

    model_config = ConfigDict(frozen=True)

    id: str | None  # None: nothing says
    use: LicenceUse
    source: str  # "model card", "checkpoint metadata", "campaign", "built in", or "" when unknown

    @property
    def refuses_publication(self) -> bool:
        return self.use in REFUSED_USES

    def said(self) -> str:
        return self.id or "unknown"


def licence_use(licence_id: str) -> LicenceUse:
    """What a licence id allows: from the table, else from refusing words in its name, else unknown."""
    normalised = licence_id.strip().lower()
    if normalised in KNOWN_LICENCES:
        return KNOWN_LICENCES[normalised]
    for pattern, use in _REFUSING_WORDS:
        if pattern.search(normalised):
            return use
    return "unknown"


def known(licence_id: str, source: str) -> Licence:
    return Licence(id=licence_id.strip().lower(), use=licence_use(licence_id), source=source)


UNKNOWN = Licence(id=None, use="unknown", source="")


def _front_matter(card: Path) -> dict:
    """A model card's YAML front matter (the block between its first two ``---`` lines); empty
    where it has none or it does not parse."""
    try:
        with card.open(encoding="utf-8-sig", errors="replace") as file:  # a BOM is no text
            text = file.read(20_000)  # front matter is at the top: a huge card is not read whole
    except OSError:
        return {}
    lines = text.splitlines()
    if not lines or lines[0].rstrip() != "---":
        return {}
    block = list(itertools.takewhile(lambda line: line.rstrip() != "---", lines[1:]))
    try:
        fields = yaml.safe_load("\n".join(block))
    except (yaml.YAMLError, RecursionError):  # a card nested deeper than the parser recurses: no licence read
        return {}
    return fields if isinstance(fields, dict) else {}


# From the most permissive use to the most restrictive: what a list of licences allows is the
# least its members allow (weights under one licence and code under another are both bound).
_USE_ORDER: tuple[LicenceUse, ...] = ("publishable", "unknown", "revenue_capped", "non_commercial", "research_only")


def card_licence(folder: Path) -> Licence:
    """The licence the model card in ``folder`` declares (``license: other`` names it in
    ``license_name``); a list of licences is bound by the most restrictive of them."""
    fields = _front_matter(folder / "README.md")
    declared = fields.get("license")
    ids = [str(item) for item in (declared if isinstance(declared, list) else [declared]) if item]
    name = fields.get("license_name")
    ids = [str(name) if item.strip().lower() == "other" and name else item for item in ids]
    ids = [item.strip().lower() for item in ids if item.strip() and item.strip().lower() != "other"]
    if not ids:
        return UNKNOWN
    use = max((licence_use(item) for item in ids), key=_USE_ORDER.index)
    return Licence(id=", ".join(ids), use=use, source="model card")


def checkpoint_licence(checkpoint: Path) -> Licence:
    """The licence a single-file safetensors checkpoint's header declares (``modelspec.license``)."""
    try:
        with checkpoint.open("rb") as file:
            (length,) = struct.unpack("<Q", file.read(8))
            if length > 100_000_000:  # not a header: a broken or foreign file
                return UNKNOWN
            header = loads(file.read(length))
    except (OSError, ValueError, struct.error):
        return UNKNOWN
    metadata = header.get("__metadata__") or {}
    licence_id = metadata.get("modelspec.license", "") if isinstance(metadata, dict) else ""
    return known(licence_id, "checkpoint metadata") if licence_id else UNKNOWN
