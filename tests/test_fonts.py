"""A charter font that lacks a glyph the pictures need is refused before anything renders: the
AI label's words, a headline, a call to action, a commune's name would be drawn with empty boxes
("S□te", "Aic□, viv□m l’estiu") on pictures marked compliant."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from visuels.cli import main
from visuels.errors import CampaignError, CharterError
from visuels.inputs.campaign import load_campaign
from visuels.inputs.charter import load_charter
from visuels.inputs.fonts import missing_glyphs

from tests.helpers import SAMPLE_CHARTER_DIR, edit_yaml

SAMPLE_FONT = SAMPLE_CHARTER_DIR / "fonts" / "DejaVuSans-Bold.ttf"


def font_without(characters: str, target: Path) -> Path:
    """The sample font with only printable ASCII, French accents and the typographic apostrophe,
    less ``characters``: a brand font of limited coverage, as regions commission them."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    kept = {chr(code) for code in range(0x20, 0x7F)} | set("àâäçéèêëîïôöùûüÿœÀÂÇÉÈÊËÎÏÔÖÙÛÜŸŒ’«»")
    font = TTFont(str(SAMPLE_FONT))
    options = subset.Options()
    options.notdef_outline = True  # the empty box a missing character is drawn as
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[ord(character) for character in kept - set(characters)])
    subsetter.subset(font)
    font.save(str(target))
    return target


def test_the_characters_a_font_lacks_are_found_as_they_are_set() -> None:
    assert missing_glyphs(SAMPLE_FONT, "Sète, Aicí, vivèm l’estiu — L’Haÿ-les-Roses, Œuilly") == ""
    assert missing_glyphs(SAMPLE_FONT, "L'été 🌞 中") == "🌞中"


def test_a_charter_whose_font_cannot_set_its_ai_label_is_refused(charter_dir: Path) -> None:
    font_without("", charter_dir / "fonts" / "Marque.ttf")
    charter_file = edit_yaml(
        charter_dir / "charter.yaml", lambda data: data["typography"].update(font="fonts/Marque.ttf")
    )
    assert load_charter(charter_file).font.name == "Marque.ttf"  # French and English labels: all there
    edit_yaml(charter_file, lambda data: data["ai_label"]["text"].update(oc="Imatge generada per IA, aicí"))
    with pytest.raises(CharterError, match=r"ai_label\.text\.oc: the font Marque\.ttf has no glyph for í"):
        load_charter(charter_file)


@pytest.mark.parametrize(
    ("missing", "fields", "where"),
    [
        ("’", {"headline": "L'été à la mer"}, "headline: the charter's font Marque.ttf has no glyph for ’"),
        (
            "",
            {"audiences": {"residents": {"prompt": "local families", "call_to_action": "Agenda 📅 solane.example"}}},
            "audiences.residents.call_to_action: the charter's font Marque.ttf has no glyph for 📅",
        ),
        ("è", {}, "communes: the charter's font Marque.ttf has no glyph for è of Sète (34301)"),
    ],
    ids=["typographic apostrophe", "emoji", "commune name"],
)
def test_a_campaign_whose_texts_the_font_cannot_set_is_refused_before_anything_renders(
    make_campaign: Callable[..., Path], charter_dir: Path, missing: str, fields: dict, where: str, capsys
) -> None:
    font_without(missing, charter_dir / "fonts" / "Marque.ttf")
    edit_yaml(charter_dir / "charter.yaml", lambda data: data["typography"].update(font="fonts/Marque.ttf"))
    campaign = make_campaign(**fields)
    with pytest.raises(CampaignError, match=where.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        load_campaign(campaign)
    assert main(["check", str(campaign)]) == 2  # as `visuels render` says it, before the model loads
    assert capsys.readouterr().err.strip().startswith(f"error: {campaign}: {where}")
