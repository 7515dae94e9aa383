"""What the charter checks say of a picture, in the reader's language.

The record keeps each reason and note in English (the compliance JSON, manifest.json: read by
tools, and as every earlier record has them). The patterns below make them, and read them back so
the report and the studio can say them in French, earlier records included.
"""

from __future__ import annotations

import re

from visuels._internal.i18n import Words, read_back

PALETTE_UNDER = "palette {conformity} < {minimum}"
LOGO_CONTRAST_UNDER = "logo contrast {contrast}:1 < {minimum}:1"
LOGO_ZONE = "logo clear zone or minimum width not respected"
LOGO_MOVED = "logo moved from {corner}: contrast there {contrast}:1 < {minimum}:1"
LABEL_TEXT_UNDER = "label text {size}px < {minimum}px"
LABEL_CONTRAST_UNDER = "label contrast {contrast}:1 < {minimum}:1"
LABEL_OUTSIDE_CROPS = "label outside the centred {crops} crop (no room there)"
TEXT_DOES_NOT_FIT = "commune name, headline or call to action does not fit"
TEXT_CONTRAST_UNDER = "text contrast {contrast}:1 < {minimum}:1"
TEXT_OVERLAPS = "text overlaps element {index}"
TEXT_RUNS_OFF = "text runs off the picture"
DARK_TEXT = "dark text on a light plate: light text reached only {contrast}:1 here"
# A retouched or edited copy, against its original (``visuels finalize``, the studio's retouch).
EDIT_SIZE_CHANGED = "size changed from {before} to {after} (the format's size)"
EDIT_LABEL_HIDDEN = "the AI label was drawn again in its place (the edit had hidden it)"
EDIT_LABEL_TOUCHED = "the AI label was drawn again in its place (the edit had touched it)"
EDIT_LOGO_TOUCHED = "the logo's area changed: check its clear zone and contrast"
EDIT_PALETTE_UNDER = "palette {conformity} < {minimum} (the original had {before})"
EDIT_OTHER_CHARTER = "checked against another charter than the one the original was made with"
CORNERS = ("top left", "top right", "bottom left", "bottom right")  # LOGO_MOVED's {corner}, said too
PATTERNS = (  # a pattern before any other that would read its text too
    EDIT_SIZE_CHANGED,
    EDIT_LABEL_HIDDEN,
    EDIT_LABEL_TOUCHED,
    EDIT_LOGO_TOUCHED,
    EDIT_PALETTE_UNDER,
    EDIT_OTHER_CHARTER,
    PALETTE_UNDER,
    LOGO_CONTRAST_UNDER,
    LOGO_ZONE,
    LOGO_MOVED,
    LABEL_TEXT_UNDER,
    LABEL_CONTRAST_UNDER,
    LABEL_OUTSIDE_CROPS,
    TEXT_DOES_NOT_FIT,
    TEXT_CONTRAST_UNDER,
    TEXT_OVERLAPS,
    TEXT_RUNS_OFF,
    DARK_TEXT,
)


def said(finding: str, words: Words) -> str:
    """A recorded reason or note in ``words``' language; one these patterns did not make, as it is."""
    found = read_back(finding, PATTERNS)
    if found is None:
        return finding
    pattern, values = found
    return words(pattern, **{name: as_written(value, words) for name, value in values.items()})


def as_written(value: str, words: Words) -> str:
    """A value as the language writes it: French "2,1" and "45 %", corners in words."""
    if value in CORNERS:
        return words(value)
    if words.lang == "fr":
        return re.sub(r"(\d)\.(\d)", r"\1,\2", value).replace("%", " %")  # as the report writes them
    return value
