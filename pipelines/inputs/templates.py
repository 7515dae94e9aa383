"""Layout templates: the designer's own layout of a format, as an SVG file with named slots.

The artboard is the format's size in pixels (the ``viewBox``, else ``width`` and ``height``).
Slots are rectangles named, by ``id`` or by the design tool's layer name (Inkscape's
``inkscape:label``, Illustrator's ``data-name``, Affinity's ``serif:id``; Figma exports layer
names as ids):

- ``image``: the generated picture, cover-cropped around its focal point (rounded by ``rx``);
- ``commune``, ``headline``, ``call_to_action``: text fitted inside the box in the charter's
  font, wrapped and shrunk down to the charter's minimum size, never overflowing;
- ``logo``: the charter's logo, in the variant that contrasts best with what is behind it;
- ``ai_label``: the AI label. Nothing may be drawn over it (the label zone is locked).

A slot name may end with its alignment: ``_left``, ``_center`` (or ``_centre``), ``_right``,
then ``_top``, ``_middle``, ``_bottom`` (``headline_center_bottom``); by default text and logo
sit left and top, the label left and bottom. Everything else is decor, drawn as designed, in
document order: a frame drawn after ``image`` lies over the picture.

``load_template`` refuses, naming the file and the slot: a missing slot, a slot outside the
artboard, an artboard that is not the format's size, decor over the label, a text box too small
for the charter's minimum text size, and every unsafe SVG feature (``visuels.inputs.svg``).
Decor colours outside the charter's palette are findings, not errors.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from math import ceil
from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np
from visuels.errors import CharterError, Text
from visuels.inputs.fonts import missing_glyphs
from visuels.inputs.slugs import name_key
from visuels.inputs.svg import (
    INKSCAPE_NS,
    SvgRefusedError,
    describe,
    font_family,
    inline_pictures,
    iter_with_parents,
    local_name,
    rasterize,
    read_svg,
    to_text,
)

# Families a text may name without asking for a font of its own.
GENERIC_FONT_FAMILIES = {"serif", "sans-serif", "monospace", "cursive", "fantasy", "system-ui", "inherit"}
_FONT_FAMILY = re.compile(r"font-family\s*:\s*([^;}]+)")
_CLASS_RULE = re.compile(r"((?:\.[\w-]+[\s,]*)+)\{([^}]*)\}")
TEXT_SLOTS = ("commune", "headline", "call_to_action")
REQUIRED_SLOTS = ("image", "commune", "logo", "ai_label")
LINE_SPACING = 1.15  # as the built-in layout's text (visuels.postprocess.typography)
LABEL_PADDING_LINES = 1.4  # the label's plate is about this many text heights tall
DRAWN = {"rect", "circle", "ellipse", "line", "polyline", "polygon", "path", "text", "image", "use"}
NOT_DRAWN = {"defs", "clipPath", "mask", "pattern", "symbol", "marker", "linearGradient", "radialGradient",
             "filter", "style", "title", "desc", "metadata"}  # fmt: skip
_SLOT_NAME = re.compile(
    r"^(image|commune|headline|call_to_action|logo|ai_label)(?:_(left|center|centre|right))?(?:_(top|middle|bottom))?$"
)
_NAME_ATTRIBUTES = ("id", f"{{{INKSCAPE_NS}}}label", "data-name", "{http://serif.com/}id")
_COLOUR_ATTRIBUTES = ("fill", "stroke", "stop-color", "flood-color", "lighting-color", "color")
_HEX = re.compile(r"#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b")
_RGB = re.compile(r"rgb\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)")
_NAMED = {"white": (255, 255, 255), "black": (0, 0, 0), "red": (255, 0, 0), "blue": (0, 0, 255),
          "green": (0, 128, 0), "yellow": (255, 255, 0), "grey": (128, 128, 128), "gray": (128, 128, 128)}  # fmt: skip
PALETTE_TOLERANCE = 12  # RGB distance within which an exported colour is the palette's (tools round)


@dataclass(frozen=True)
class Slot:
    name: str
    left: float
    top: float
    width: float
    height: float
    align: str  # left, center, right
    valign: str  # top, middle, bottom
    radius: float = 0.0

    def box(self) -> tuple[int, int, int, int]:
        """left, top, right, bottom in whole pixels."""
        return (round(self.left), round(self.top), round(self.left + self.width), round(self.top + self.height))


@dataclass(frozen=True)
class TemplatePart:
    """One step of the drawing order: decor (an SVG of its own) or a slot."""

    name: str
    slot: str | None = None  # the slot drawn here, or None for decor
    svg: str = ""


@dataclass(frozen=True)
class Template:
    path: Path
    format_name: str
    width: int
    height: int
    slots: dict[str, Slot]
    parts: tuple[TemplatePart, ...]  # in drawing order
    sha256: str
    findings: tuple[Text, ...] = ()  # decor colours outside the palette


# A number as SVG writes one (``12``, ``-0.5``, ``.75``, ``1e-3``): never Python's ``nan`` or ``inf``.
_SVG_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"


def _finite(text: str) -> float | None:
    """``text`` as an SVG number, if it is one and finite (``1e400`` is not)."""
    if not re.fullmatch(_SVG_NUMBER, text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _numbers(text: str) -> list[float] | None:
    """A list of SVG numbers (a viewBox, a transform's arguments); None if any is not one."""
    values = [_finite(part) for part in re.split(r"[\s,]+", text.strip()) if part]
    return None if None in values else values  # type: ignore[return-value]


def _number(value: str | None, where: str) -> float:
    if value is None:
        return 0.0
    match = re.fullmatch(r"\s*([^\s]*?)\s*(px)?\s*", value)
    number = _finite(match.group(1)) if match else None
    if number is None:
        raise SvgRefusedError("{where}: {value!r} is not a length in pixels", where=where, value=value)
    return number


# One transform of an SVG transform list: its name and its numbers.
_TRANSFORM = re.compile(r"\s*(translate|scale|matrix|rotate|skewX|skewY)\s*\(([^)]*)\)\s*,?")
Placement = tuple[float, float, float, float]  # x scale, y scale, x shift, y shift: (x, y) -> (sx x + dx, sy y + dy)
UNMOVED: Placement = (1.0, 1.0, 0.0, 0.0)


def _then(outer: Placement, inner: Placement) -> Placement:
    """``inner`` applied first, then ``outer``."""
    return (outer[0] * inner[0], outer[1] * inner[1], outer[0] * inner[2] + outer[2], outer[1] * inner[3] + outer[3])


def _placement(element: Element, where: str) -> Placement:
    """What an element's ``transform`` does to a slot: slots must stay upright rectangles, so only
    shifts and positive scales along the axes are allowed (as Affinity and PDF imports write them:
    ``matrix(0.75,0,0,0.75,0,0)``), in any list of ``translate``, ``scale`` and ``matrix``."""
    transform = (element.get("transform") or "").strip()
    placement = UNMOVED
    position = 0
    while position < len(transform):
        match = _TRANSFORM.match(transform, position)
        values = _numbers(match.group(2)) if match else None
        if match is None or values is None:  # not SVG's syntax, or numbers that are not (nan, 1e400)
            raise SvgRefusedError("{where}: cannot read its transform {transform!r}", where=where, transform=transform)
        position = match.end()
        kind = match.group(1)
        step = None
        if kind == "translate" and len(values) in (1, 2):
            step = (1.0, 1.0, values[0], values[1] if len(values) == 2 else 0.0)
        elif kind == "scale" and len(values) in (1, 2):
            step = (values[0], values[-1], 0.0, 0.0)
        elif kind == "matrix" and len(values) == 6 and values[1] == 0 and values[2] == 0:
            step = (values[0], values[3], values[4], values[5])
        elif kind == "rotate" and values and values[0] % 360 == 0:
            step = UNMOVED
        if step is None or step[0] <= 0 or step[1] <= 0:
            raise SvgRefusedError(
                "{where} is rotated, skewed or mirrored ({transform}): a slot must be an upright rectangle",
                where=where,
                transform=transform,
            )
        placement = _then(placement, step)
    return placement


def slot_name(element: Element) -> tuple[str, str | None, str | None] | None:
    """The slot an element names (with its alignment), or None for decor."""
    for attribute in _NAME_ATTRIBUTES:
        value = element.get(attribute)
        if value:
            match = _SLOT_NAME.match(name_key(value))
            if match:
                return match.group(1), match.group(2), match.group(3)
    return None


def _artboard(root: Element, where: str) -> tuple[float, float]:
    view_box = root.get("viewBox")
    if view_box:
        values = _numbers(view_box)
        if values is None or len(values) != 4 or values[0] or values[1]:
            raise SvgRefusedError(
                "{where}: the viewBox must be four numbers starting at 0 0, it is {view_box!r}",
                where=where,
                view_box=view_box,
            )
        return values[2], values[3]
    return _number(root.get("width"), where), _number(root.get("height"), where)


def _colours(element: Element) -> list[tuple[str, tuple[int, int, int]]]:
    """The colours an element paints with, as written and as RGB."""
    texts = [element.get(name, "") for name in _COLOUR_ATTRIBUTES] + [element.get("style", "")]
    found = []
    for text in texts:
        for match in _HEX.finditer(text):
            digits = match.group(1)
            digits = "".join(c * 2 for c in digits) if len(digits) == 3 else digits
            found.append((match.group(0), tuple(int(digits[i : i + 2], 16) for i in (0, 2, 4))))
        for match in _RGB.finditer(text):
            found.append((match.group(0), tuple(min(255, int(v)) for v in match.groups())))
        for word in re.findall(r"[a-z]+", text.lower()):
            if word in _NAMED and re.search(rf"(^|[:\s]){word}\b", text.lower()):
                found.append((word, _NAMED[word]))
    return found  # type: ignore[return-value]


def palette_findings(root: Element, palette: list[tuple[int, int, int]]) -> list[Text]:
    findings = []
    seen = set()
    for element, parents in iter_with_parents(root):
        # A clip path's or a mask's fill only says where (Figma writes fill="white" there): never seen.
        if slot_name(element) or any(local_name(parent.tag) in ("clipPath", "mask") for parent in parents):
            continue
        for written, rgb in _colours(element):
            near = min(sum((a - b) ** 2 for a, b in zip(rgb, colour, strict=True)) ** 0.5 for colour in palette)
            if near > PALETTE_TOLERANCE and written not in seen:
                seen.add(written)
                findings.append(
                    Text(
                        "decor colour {colour} ({element}) is not in the charter's palette",
                        colour=written,
                        element=describe(element),
                    )
                )
    return findings


def font_findings(root: Element, font: Path) -> list[Text]:
    """Decor text that asks for another font than the charter's: it is set in the charter's all
    the same (system fonts are never looked up), which its designer should know before a render."""
    charter_family = font_family(font)
    allowed = {charter_family.casefold(), *GENERIC_FONT_FAMILIES}
    by_class = _class_fonts(root)
    findings = []
    for element, parents in iter_with_parents(root):
        if local_name(element.tag) != "text" or any(local_name(parent.tag) in NOT_DRAWN for parent in parents):
            continue
        # Its own font, then any its spans ask for (Inkscape's and Figma's <tspan>).
        asked = [_nearest(_asked_fonts(element, parents, by_class))] + [
            _nearest(_asked_fonts(span, [], by_class)) for span in element.iter() if local_name(span.tag) == "tspan"
        ]
        others = [family for family in asked if family and family.casefold() not in allowed]
        if others:
            findings.append(
                Text(
                    "decor text {element} asks for the font {family}: it is set in the charter's, {charter_font};"
                    " outline it in your design tool to keep its own",
                    element=describe(element),
                    family=others[0],
                    charter_font=charter_family,
                )
            )
    return findings


def _font_of(declarations: str) -> str | None:
    """The first family a ``font-family`` declaration names, unquoted (None: it names none)."""
    found = _FONT_FAMILY.search(declarations)
    return found.group(1).split(",")[0].strip().strip("'\"") if found else None


def _class_fonts(root: Element) -> dict[str, str]:
    """The font each CSS class of the template's style sheets asks for (Illustrator's ``.cls-3``)."""
    fonts = {}
    for element in root.iter():
        if local_name(element.tag) == "style":
            for selectors, declarations in _CLASS_RULE.findall(element.text or ""):
                if family := _font_of(declarations):
                    fonts |= dict.fromkeys(re.findall(r"\.([\w-]+)", selectors), family)
    return fonts


def _nearest(fonts: Iterator[str | None]) -> str | None:
    return next((family for family in fonts if family), None)


def _asked_fonts(element: Element, parents: list[Element], by_class: dict[str, str]) -> Iterator[str | None]:
    """The fonts a text asks for, nearest first: its own style, attribute and classes, then its groups'."""
    for holder in (element, *reversed(parents)):
        yield _font_of(holder.get("style", ""))
        yield _font_of(f"font-family: {holder.get('font-family')}") if holder.get("font-family") else None
        yield next((by_class[name] for name in holder.get("class", "").split() if name in by_class), None)


def _drawn_elements(root: Element) -> list[Element]:
    """The elements that paint, in document order (not those inside defs, masks or a text)."""
    drawn = []
    for element, parents in iter_with_parents(root):
        if local_name(element.tag) in DRAWN and not any(
            local_name(parent.tag) in NOT_DRAWN | {"text"} for parent in parents
        ):
            drawn.append(element)
    return drawn


def _decor_part(root: Element, drawn: list[Element], keep: set[int], index: int) -> TemplatePart:
    """The template with only the painting elements in ``keep`` (their ``id()``) left to paint."""
    part = copy.deepcopy(root)
    copies = dict(zip((id(element) for element in root.iter()), part.iter(), strict=True))
    parents = {child: parent for parent in part.iter() for child in parent}
    for element in drawn:
        if id(element) not in keep:
            copied = copies[id(element)]
            parents[copied].remove(copied)
    return TemplatePart(name=f"décor {index}", svg=to_text(part))


def _split(root: Element, slot_elements: dict[int, str]) -> tuple[TemplatePart, ...]:
    """The drawing order: runs of decor between the slots, each run an SVG of its own."""
    drawn = _drawn_elements(root)
    parts: list[TemplatePart] = []
    run: set[int] = set()
    for element in drawn:
        if id(element) in slot_elements:
            if run:
                parts.append(_decor_part(root, drawn, run, sum(part.slot is None for part in parts) + 1))
                run = set()
            parts.append(TemplatePart(name=slot_elements[id(element)], slot=slot_elements[id(element)]))
        else:
            run.add(id(element))
    if run:
        parts.append(_decor_part(root, drawn, run, sum(part.slot is None for part in parts) + 1))
    return tuple(parts)


def _slot(
    element: Element, parents: list[Element], root: Element, name: str, align: str | None, valign: str | None
) -> Slot:
    """The slot ``element`` draws, placed on the artboard through its groups' and nested
    viewports' shifts and scales."""
    where = f"slot '{name}'"
    if local_name(element.tag) != "rect":
        raise SvgRefusedError(
            "{where} is a <{value}>: a slot is a rectangle", where=where, value=local_name(element.tag)
        )
    placement = UNMOVED
    for holder in [*parents, element]:
        if holder is not root and local_name(holder.tag) == "svg":  # a nested viewport: placed by x, y
            if holder.get("viewBox"):
                raise SvgRefusedError("{where} lies in a nested <svg> with a viewBox of its own", where=where)
            shift = (1.0, 1.0, _number(holder.get("x"), where), _number(holder.get("y"), where))
            placement = _then(placement, shift)
        placement = _then(placement, _placement(holder, where))
    x_scale, y_scale, dx, dy = placement
    return Slot(
        name=name,
        left=x_scale * _number(element.get("x"), where) + dx,
        top=y_scale * _number(element.get("y"), where) + dy,
        width=x_scale * _number(element.get("width"), where),
        height=y_scale * _number(element.get("height"), where),
        align={"centre": "center"}.get(align or "", align or "left"),
        valign=valign or ("bottom" if name == "ai_label" else "top"),
        radius=x_scale * _number(element.get("rx") or element.get("ry"), where),
    )


def _slots(root: Element, width: float, height: float) -> tuple[dict[str, Slot], dict[int, str]]:
    """The template's slots by name, each inside the artboard, and the name of each slot's element
    by its ``id()`` (for the drawing order)."""
    slots: dict[str, Slot] = {}
    slot_elements: dict[int, str] = {}
    for element, parents in iter_with_parents(root):
        named = slot_name(element)
        if named is None:
            continue
        name, align, valign = named
        where = f"slot '{name}'"
        if name in slots:
            raise SvgRefusedError("{where} is drawn twice", where=where)
        slot = _slot(element, parents, root, name, align, valign)
        if slot.width <= 0 or slot.height <= 0:
            raise SvgRefusedError(
                "{where} is empty ({width:g}x{height:g})", where=where, width=slot.width, height=slot.height
            )
        if (
            slot.left < -0.5
            or slot.top < -0.5
            or slot.left + slot.width > width + 0.5
            or slot.top + slot.height > height + 0.5
        ):
            raise SvgRefusedError(
                "{where} runs outside the {width:g}x{height:g} artboard", where=where, width=width, height=height
            )
        slots[name] = slot
        slot_elements[id(element)] = name
    for name in REQUIRED_SLOTS:
        if name not in slots:
            raise SvgRefusedError("slot '{name}' is missing (a rectangle with id or layer name '{name}')", name=name)
    return slots, slot_elements


def _check_text_room(slots: dict[str, Slot], min_text_px: int, min_label_px: int) -> None:
    """Each text slot holds a line at the charter's smallest text size, the label slot its plate."""
    for name in TEXT_SLOTS:
        if name in slots and slots[name].height < ceil(min_text_px * LINE_SPACING):
            raise SvgRefusedError(
                "slot '{name}' is {height:g} px high: the charter's smallest text ({min_text_px} px) needs {value}",
                name=name,
                height=slots[name].height,
                min_text_px=min_text_px,
                value=ceil(min_text_px * LINE_SPACING),
            )
    label_needs = ceil(min_label_px * LABEL_PADDING_LINES)
    if slots["ai_label"].height < label_needs:
        raise SvgRefusedError(
            "slot 'ai_label' is {height:g} px high: the label at the charter's smallest size "
            "({min_label_px} px) needs {label_needs}",
            height=slots["ai_label"].height,
            min_label_px=min_label_px,
            label_needs=label_needs,
        )


def _check_decor_glyphs(root: Element, font: Path) -> None:
    """Decor text is set in the charter's font only: every character it writes must be in it."""
    for element in root.iter():
        if local_name(element.tag) == "text" and (missing := missing_glyphs(font, "".join(element.itertext()))):
            raise SvgRefusedError(
                "{where}: the charter's font has no glyph for {characters}: decor text is set in it only,"
                " and would lose them",
                where=describe(element),
                characters=" ".join(missing),
            )


def load_template(
    path: Path,
    format_name: str,
    size: tuple[int, int],
    charter_path: Path,
    field: str,
    font: Path,
    min_text_px: int,
    min_label_px: int,
    palette: list[tuple[int, int, int]],
) -> Template:
    """Read and check one template for a format of ``size``; every refusal is a
    :class:`CharterError` naming the charter, the field and the slot or element."""

    def refuse(problem: Text) -> CharterError:
        return CharterError(charter_path, field, "{name}: {problem}", name=path.name, problem=problem)

    try:
        root = read_svg(path)
        width, height = _artboard(root, "the artboard")
        if (round(width), round(height)) != size:
            raise SvgRefusedError(
                "the artboard is {width:g}x{height:g}, the format {format_name} is "
                "{format_width}x{format_height} pixels",
                width=width,
                height=height,
                format_name=format_name,
                format_width=size[0],
                format_height=size[1],
            )
        slots, slot_elements = _slots(root, width, height)
        _check_text_room(slots, min_text_px, min_label_px)
        _check_decor_glyphs(root, font)
        inline_pictures(root, path.parent)
        parts = _split(root, slot_elements)
    except SvgRefusedError as exc:
        raise refuse(exc.text) from None
    _check_label_is_clear(parts, slots["ai_label"], size, font, refuse)
    return Template(
        path=path,
        format_name=format_name,
        width=size[0],
        height=size[1],
        slots=slots,
        parts=parts,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        findings=tuple(palette_findings(root, palette) + font_findings(root, font)),
    )


def _check_label_is_clear(
    parts: tuple[TemplatePart, ...],
    label: Slot,
    size: tuple[int, int],
    font: Path,
    refuse: Callable[[Text], CharterError],
) -> None:
    """Decor drawn after the label slot must leave its box untouched: the label zone is locked."""
    after = [part for part in parts[[part.slot for part in parts].index("ai_label") + 1 :] if part.slot is None]
    left, top, right, bottom = label.box()
    for part in after:
        alpha = np.asarray(rasterize(part.svg, *size, font).getchannel("A"))[top:bottom, left:right]
        if alpha.size and alpha.max() > 0:
            raise refuse(
                Text("decor ({name}) is drawn over the 'ai_label' slot: the label zone is locked", name=part.name)
            )
