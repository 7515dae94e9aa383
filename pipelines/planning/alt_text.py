"""The alternative text of every picture, in its own language: the commune, what the picture
shows, and that it is AI-generated (written to XMP as IPTC ``AltTextAccessibility`` and shown in
the report, for screen readers and for publishers' CMS).

What the picture shows is said from what it was asked to show (the commune's landscapes and
landmark): the generator is told these, nothing reads the pixels back.
"""

from __future__ import annotations

import re
from functools import lru_cache

from visuels.inputs.communes import Commune

# Per language: the sentence, and the commune's landscape tags in words. A language without its
# own sentence gets the French one (the campaign's texts may be in any language the charter labels).
SENTENCES = {
    "fr": "{campaign}, {commune} : {landscapes}, {landmark}. {label}.",
    "en": "{campaign}, {commune}: {landscapes}, {landmark}. {label}.",
    "oc": "{campaign}, {commune} : {landscapes}, {landmark}. {label}.",
}
LANDSCAPES = {
    "fr": {"sea": "la mer", "mountain": "la montagne", "vineyard": "les vignes", "river": "la rivière",
           "city": "la ville", "village": "le village", "countryside": "la campagne", "forest": "la forêt",
           "lake": "le lac", "heritage": "le patrimoine"},
    "en": {"sea": "the sea", "mountain": "the mountains", "vineyard": "the vineyards", "river": "the river",
           "city": "the city", "village": "the village", "countryside": "the countryside", "forest": "the forest",
           "lake": "the lake", "heritage": "its heritage"},
    "oc": {"sea": "la mar", "mountain": "la montanha", "vineyard": "las vinhas", "river": "la ribièra",
           "city": "la vila", "village": "lo vilatge", "countryside": "la campanha", "forest": "la selva",
           "lake": "lo lac", "heritage": "lo patrimòni"},
}  # fmt: skip
AND = {"fr": "et", "en": "and", "oc": "e"}


def alt_text(campaign: str, commune: Commune, language: str, label: str) -> str:
    """One sentence: the campaign, the commune, its landscapes and landmark, and the AI label's
    own words (``label``: the charter's label text in ``language``)."""
    words = language if language in SENTENCES else "fr"
    landscapes = [LANDSCAPES[words][tag.value] for tag in commune.landscapes[:2]]
    sentence = SENTENCES[words].format(
        campaign=campaign,
        commune=commune.name,
        landscapes=f" {AND[words]} ".join(landscapes),
        landmark=commune.landmarks[0] if commune.landmarks else "",
        label=label.rstrip("."),
    )
    return _without_empty_parts(sentence)


@lru_cache(maxsize=256)  # a commune's sentence recurs in each of its formats and audiences
def _without_empty_parts(text: str) -> str:
    """A commune taken from the COG alone has no landscapes or landmark: drop their empty places."""
    text = re.sub(r"(\s*,\s*)+\.", ".", text)  # ", ." at the end of a list
    text = re.sub(r"\s*:\s*,\s*", " : " if " : " in text else ": ", text)  # ": ," where the list began
    text = re.sub(r"(,\s*){2,}", ", ", text)
    return re.sub(r"\s*:\s*\.", ".", text)
