"""A campaign's texts against its layout templates, before anything renders: every commune name,
headline and call to action fits its slot at the charter's smallest size or larger, and the AI
label fits its slot in every language. A text that cannot fit is an error naming the campaign,
the template and the slot: the designer widens the slot or shortens the text.
"""

from __future__ import annotations

from visuels.errors import CampaignError
from visuels.inputs.campaign import Campaign
from visuels.inputs.fonts import typographic
from visuels.inputs.templates import Template
from visuels.postprocess.label import label_plate
from visuels.postprocess.template_fill import SLOT_LABELS, fit_in_slot


def check_layout(campaign: Campaign, template: Template, text, checked: set[tuple]) -> None:
    """Raise :class:`CampaignError` if one of a job's texts (a planning ``JobText``) or its label
    cannot fit its slot. ``checked`` holds what earlier jobs of the plan already passed."""
    charter = campaign.charter
    minimum = charter.spec.typography.min_text_px
    for slot_name, value in (
        ("commune", text.commune.name),
        ("headline", text.headline),
        ("call_to_action", text.call_to_action),
    ):
        if not value or (template.sha256, slot_name, value) in checked:
            continue
        checked.add((template.sha256, slot_name, value))
        slot = template.slots.get(slot_name)
        if slot is None:
            raise CampaignError(
                campaign.path,
                "layout",
                "{name} has no '{slot_name}' slot for the {label} {value!r}",
                name=template.path.name,
                slot_name=slot_name,
                label=SLOT_LABELS[slot_name],
                value=value,
            )
        if not fit_in_slot(typographic(value), charter.font, slot, minimum).fits:
            raise CampaignError(
                campaign.path,
                "layout",
                "{value!r} overflows slot '{slot_name}' of {name} ({width:g}x{height:g} px) even at "
                "the charter's smallest size, {minimum} px",
                value=value,
                slot_name=slot_name,
                name=template.path.name,
                width=slot.width,
                height=slot.height,
                minimum=minimum,
            )
    if (template.sha256, text.language) in checked:
        return
    checked.add((template.sha256, text.language))
    slot = template.slots["ai_label"]
    plate, _ = label_plate(charter, text.language, charter.spec.ai_label.min_text_px)
    if plate.width - 1 > slot.width or plate.height - 1 > slot.height:
        raise CampaignError(
            campaign.path,
            "layout",
            "the AI label in '{language}' does not fit slot 'ai_label' of {name} "
            "({width:g}x{height:g} px) at the charter's smallest label size",
            language=text.language,
            name=template.path.name,
            width=slot.width,
            height=slot.height,
        )
