import random
import re

import pytest
from visuels.inputs.slugs import MAX_LENGTH, slugify


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Castelnau-d'Estrétefonds", "castelnau-d-estretefonds"),
        ("Saint-Remy-en-Bouzemont-Saint-Genest-et-Isson", "saint-remy-en-bouzemont-saint-genest-et-isson"),
        ("L'Haÿ-les-Roses", "l-hay-les-roses"),
        ("Œuilly", "oeuilly"),
        ("Florac Trois Rivières", "florac-trois-rivieres"),
        ("Été 2027 — Vivre en Solane", "ete-2027-vivre-en-solane"),
        ("../../etc/passwd", "etc-passwd"),
        ("..", "unnamed"),
        ("", "unnamed"),
        ("CON", "con-x"),
        ("com1", "com1-x"),
        ("a/b\\c:d*e?f", "a-b-c-d-e-f"),
    ],
)
def test_examples(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_names_without_ascii_letters_keep_folders_of_their_own() -> None:
    """Two campaigns named "🌞" and "日本" both went to outputs/unnamed: one report over both."""
    assert slugify("🌞") != slugify("日本") and slugify("🌞").startswith("unnamed-")
    assert slugify("🌞") == slugify("🌞")


def test_any_text_gives_a_safe_path_component() -> None:
    rng = random.Random(1)
    alphabet = "abcÉéèçœæßøÿ'-. /\\:*?\"<>|\0\n\t…—日本ا" + "".join(chr(c) for c in range(0x20, 0x7F))
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120)))
        slug = slugify(text)
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug), (text, slug)
        assert len(slug) <= MAX_LENGTH + 2
        assert slug not in {"con", "prn", "aux", "nul"}
