"""IPTC XMP metadata saying a picture is AI-generated, with the charter's creator and credit, and the
credit of any photo it was made from."""

from __future__ import annotations

from enum import StrEnum
from xml.sax.saxutils import escape, quoteattr

from visuels.inputs.images import XMP_PNG_KEY

__all__ = ["XMP_PNG_KEY", "DigitalSourceType", "xmp_packet"]


class DigitalSourceType(StrEnum):
    """IPTC NewsCodes for how a picture was made."""

    generated = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    composite = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"


def xmp_packet(
    source_type: DigitalSourceType,
    creator: str,
    software: str,
    photo_credit: str | None = None,
    alt_text: tuple[str, str] | None = None,
    ai_system: tuple[str, str] | None = None,
    prompt: str | None = None,
) -> str:
    """An XMP packet with IPTC DigitalSourceType, dc:creator, photoshop:Credit and the generator.

    ``ai_system``: (the model, its version: a hash) as IPTC 2025.1's AISystemUsed and
    AISystemVersionUsed; ``prompt``: AIPromptInformation, only where the charter publishes prompts.

    ``photo_credit``: the photo the picture was made from ("Author (licence, date)"): it joins the
    credit line and is listed as a contributor (dc:contributor), as the photo's licence asks.
    """
    credit = creator if photo_credit is None else f"{creator}; photo: {photo_credit}"
    contributor = ""
    if photo_credit is not None:
        item = escape(f"Photo: {photo_credit}")
        contributor = f"   <dc:contributor><rdf:Bag><rdf:li>{item}</rdf:li></rdf:Bag></dc:contributor>\n"
    alternative = ""
    if alt_text is not None:
        language, text = alt_text
        alternative = (
            "   <Iptc4xmpCore:AltTextAccessibility><rdf:Alt>"
            f"<rdf:li xml:lang={quoteattr(language)}>{escape(text)}</rdf:li>"
            "</rdf:Alt></Iptc4xmpCore:AltTextAccessibility>\n"
        )
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:Iptc4xmpCore="http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"\n'
        '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '    xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        f"    Iptc4xmpExt:DigitalSourceType={quoteattr(source_type.value)}\n"
        f"    photoshop:Credit={quoteattr(credit)}\n"
        f"    xmp:CreatorTool={quoteattr(software)}{_ai_fields(ai_system, prompt)}>\n"
        f"   <dc:creator><rdf:Seq><rdf:li>{escape(creator)}</rdf:li></rdf:Seq></dc:creator>\n"
        f"{contributor}"
        f"{alternative}"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )


def _ai_fields(ai_system: tuple[str, str] | None, prompt: str | None) -> str:
    """IPTC 2025.1's AI properties, as attributes of the description (written before signing)."""
    fields = ""
    if ai_system is not None:
        name, version = ai_system
        fields += f"\n    Iptc4xmpExt:AISystemUsed={quoteattr(name)}"
        fields += f"\n    Iptc4xmpExt:AISystemVersionUsed={quoteattr(version)}"
    if prompt is not None:
        fields += f"\n    Iptc4xmpExt:AIPromptInformation={quoteattr(prompt)}"
    return fields
