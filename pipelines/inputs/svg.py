"""SVG files from outside, read safely and drawn with resvg.

A layout template is drawn by a designer in Illustrator, Figma, Inkscape or Affinity and comes
from outside the project: it is parsed with defusedxml (no DTD, no entities), and refused when it
is larger than ``MAX_SVG_BYTES``, nested deeper than ``MAX_DEPTH``, holds a script, an event
handler, an animation, a ``foreignObject`` or an external reference (``href`` to a URL, to a file outside its
folder, CSS ``url()`` or ``@import``). Pictures inside it may be embedded (``data:image/...``) or files beside it.

What design tools write around the drawing is read first (``_plain_svg``): a compressed file
(``.svgz``, Inkscape's option), and the document type declaration Illustrator's "Save As" writes,
whose entities only name namespaces: plain text entities are substituted (no entity in another,
the result within the size limit) and the declaration dropped, so the XML parser never sees a DTD;
any other declaration (external, parameter, nested entities) is refused.

It is drawn by resvg (``resvg-py``): a maintained renderer in Rust that never runs scripts, never
fetches anything and ships as a wheel (cairosvg needs the system's cairo; skia's wheels are
large). Text in decor is set with the charter's font only: system fonts are never looked up, so
a picture looks the same on every machine.
"""

from __future__ import annotations

import base64
import io
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from xml.etree.ElementTree import Element, tostring

import resvg_py
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeXml
from PIL import Image, ImageFont
from visuels.errors import InvalidValueError

INKSCAPE_NS = "http://www.inkscape.org/namespaces/inkscape"
MAX_SVG_BYTES = 2_000_000  # a layout is a few kB to a few hundred; beyond, a mistake or an attack
MAX_EMBEDDED_BYTES = 20_000_000  # pictures beside the template, all together
MAX_DEPTH = 100  # elements inside elements: a designer's groups go a few tens deep; the copy recurses
EMBEDDABLE = (".png", ".jpg", ".jpeg", ".webp")
REFUSED_ELEMENTS = {"script", "foreignObject", "iframe", "embed", "object", "handler", "listener"}
# SMIL animation: nothing a still layout needs, and it can set a link or an event handler once shown.
ANIMATION_ELEMENTS = {"animate", "set", "animateMotion", "animateTransform", "animateColor", "discard"}
_CSS_URL = re.compile(r"url\(\s*['\"]?\s*([^'\")\s]*)", re.IGNORECASE)
GZIP_MAGIC = b"\x1f\x8b"
_DOCTYPE = re.compile(rb"<!DOCTYPE\s+svg\b(?P<external>[^\[>]*)(?:\[(?P<subset>[^\]]*)\])?\s*>", re.IGNORECASE)
_COMMENT = re.compile(rb"<!--.*?-->", re.DOTALL)
# A general entity whose value is plain text: no markup, no reference to another entity, no quote
# (substituted into an attribute, a quote would end it where the XML parser would not).
_TEXT_ENTITY = re.compile(rb"""<!ENTITY\s+(?P<name>[A-Za-z_][\w.-]*)\s+(?P<q>["'])(?P<value>[^"'<>&%]*)(?P=q)\s*>""")


class SvgRefusedError(InvalidValueError):
    """Why an SVG file is refused; the caller names the file and the field."""


def local_name(tag: str) -> str:
    """``{namespace}rect`` -> ``rect``."""
    return tag.rsplit("}", 1)[-1]


def _check_reference(value: str, folder: Path, where: str) -> None:
    """An ``href`` or CSS ``url()`` may point inside the document, to an embedded picture, or to a
    picture file in the template's folder; nothing else."""
    value = value.strip()
    if not value or value.startswith("#") or re.match(r"data:image/(png|jpeg|webp);base64,", value):
        return
    if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", value) or value.startswith(("/", "\\")):
        raise SvgRefusedError(
            "{where} refers to {value!r} outside the template: embed the picture or put it beside the template",
            where=where,
            value=value[:60],
        )
    path = (folder / value).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise SvgRefusedError(
            "{where} refers to {value!r}, outside the template's folder", where=where, value=value[:60]
        )
    if path.suffix.lower() not in EMBEDDABLE or not path.is_file():
        raise SvgRefusedError(
            "{where} refers to {value!r}, which is not a PNG, JPEG or WebP picture beside it",
            where=where,
            value=value[:60],
        )


def _check_css(text: str, folder: Path, where: str) -> None:
    if "@import" in text.lower():
        raise SvgRefusedError("{where} imports a style sheet", where=where)
    for match in _CSS_URL.finditer(text):
        _check_reference(match.group(1), folder, where)


def describe(element: Element) -> str:
    """An element as a designer finds it in their layers panel: its name or id, else its tag."""
    name = element.get("id") or element.get(f"{{{INKSCAPE_NS}}}label") or element.get("data-name")
    return f"<{local_name(element.tag)} id={name!r}>" if name else f"<{local_name(element.tag)}>"


def _deepest(root: Element) -> int:
    deepest, stack = 0, [(root, 1)]
    while stack:
        element, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in element)
    return deepest


def read_svg(path: Path) -> Element:
    """The root element of a safe SVG file; :class:`SvgRefusedError` says why it is not."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SvgRefusedError("cannot read it ({strerror})", strerror=exc.strerror) from None
    if size > MAX_SVG_BYTES:
        raise SvgRefusedError(
            "{size:,} bytes: a template is at most {MAX_SVG_BYTES:,}", size=size, MAX_SVG_BYTES=MAX_SVG_BYTES
        )
    try:
        root = SafeXml.fromstring(_plain_svg(path.read_bytes()), forbid_dtd=True)
    except DefusedXmlException:
        raise SvgRefusedError("it declares a DTD or entities, which templates may not use") from None
    except (SafeXml.ParseError, ValueError) as exc:
        raise SvgRefusedError("not well-formed XML ({exc})", exc=str(exc)) from None
    if local_name(root.tag) != "svg":
        raise SvgRefusedError("its root element is <{value}>, not <svg>", value=local_name(root.tag))
    if (depth := _deepest(root)) > MAX_DEPTH:
        raise SvgRefusedError("elements nested {depth} deep: at most {most}", depth=depth, most=MAX_DEPTH)
    folder = path.parent
    embedded = 0
    for element in root.iter():
        name = local_name(element.tag)
        where = describe(element)
        if name in REFUSED_ELEMENTS:
            raise SvgRefusedError("{where}: scripts and embedded documents are refused", where=where)
        if name in ANIMATION_ELEMENTS:
            raise SvgRefusedError("{where}: animations are refused: a template is a still layout", where=where)
        for attribute, value in element.attrib.items():
            attribute_name = local_name(attribute)
            if attribute_name.lower().startswith("on"):
                raise SvgRefusedError(
                    "{where} has an event handler ({attribute_name}): scripts are refused",
                    where=where,
                    attribute_name=attribute_name,
                )
            if attribute_name == "href":
                _check_reference(value, folder, where)
                if not value.startswith(("#", "data:")) and value.strip():
                    embedded += (folder / value.strip()).stat().st_size
            elif attribute_name == "style" or "url(" in value:
                _check_css(value, folder, where)
        if name == "style" and element.text:
            _check_css(element.text, folder, where)
    if embedded > MAX_EMBEDDED_BYTES:
        raise SvgRefusedError(
            "the pictures it draws weigh {embedded:,} bytes: at most {MAX_EMBEDDED_BYTES:,}",
            embedded=embedded,
            MAX_EMBEDDED_BYTES=MAX_EMBEDDED_BYTES,
        )
    return root


def _plain_svg(data: bytes) -> bytes:
    """The SVG document itself: uncompressed, its document type declaration resolved (module doc)."""
    if data.startswith(GZIP_MAGIC):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(data, MAX_SVG_BYTES + 1)
        except zlib.error as exc:
            raise SvgRefusedError("a compressed SVG that does not decompress ({exc})", exc=str(exc)) from None
        if len(data) > MAX_SVG_BYTES:
            raise SvgRefusedError(
                "more than {MAX_SVG_BYTES:,} bytes once decompressed: a template is at most that",
                MAX_SVG_BYTES=MAX_SVG_BYTES,
            )
    doctype = _DOCTYPE.search(data)
    if doctype is None:
        return data  # any other DTD is the parser's to refuse
    subset = _COMMENT.sub(b"", doctype["subset"] or b"")
    entities = {match["name"]: match["value"] for match in _TEXT_ENTITY.finditer(subset)}
    if _TEXT_ENTITY.sub(b"", subset).strip():
        raise SvgRefusedError(
            "it declares a DTD with more than plain text entities, which templates may not use:"
            " export it again as plain SVG"
        )
    body = data[: doctype.start()] + data[doctype.end() :]
    for name, value in entities.items():
        reference = b"&" + name + b";"
        if len(body) + body.count(reference) * max(len(value) - len(reference), 0) > MAX_SVG_BYTES:
            raise SvgRefusedError(
                "its entities expand it beyond {MAX_SVG_BYTES:,} bytes: a template is at most that",
                MAX_SVG_BYTES=MAX_SVG_BYTES,
            )
        body = body.replace(reference, value)
    return body


def inline_pictures(root: Element, folder: Path) -> None:
    """Pictures beside the template, embedded as data URIs: the renderer then never opens a file."""
    kinds = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}
    for element in root.iter():
        for attribute, value in list(element.attrib.items()):
            if local_name(attribute) == "href" and value.strip() and not value.startswith(("#", "data:")):
                file = folder / value.strip()
                data = base64.b64encode(file.read_bytes()).decode("ascii")
                element.set(attribute, f"data:image/{kinds[file.suffix.lower()]};base64,{data}")


def to_text(root: Element) -> str:
    return tostring(root, encoding="unicode")


def rasterize(svg: str, width: int, height: int, font: Path) -> Image.Image:
    """The SVG drawn at ``width`` x ``height`` pixels, RGBA, with the charter's font and no other."""
    png = resvg_py.svg_to_bytes(
        svg_string=svg,
        width=width,
        height=height,
        skip_system_fonts=True,
        font_files=[str(font)],
        font_family=font_family(font),
    )
    with Image.open(io.BytesIO(bytes(png))) as image:
        drawn = image.convert("RGBA")
    if drawn.size != (width, height):  # resvg keeps the artboard's aspect: the caller checked it
        drawn = drawn.resize((width, height), Image.Resampling.LANCZOS)
    return drawn


def draw_scalable(svg: str, longest: int) -> Image.Image:
    """An SVG that carries its own aspect (a logo) drawn RGBA with its longest side ``longest``
    pixels (resvg fits it in the square, keeping its aspect: however thin, never larger); no font
    is loaded (text must be outlines)."""
    png = resvg_py.svg_to_bytes(svg_string=svg, width=longest, height=longest, skip_system_fonts=True)
    with Image.open(io.BytesIO(bytes(png))) as image:
        return image.convert("RGBA")


def font_family(font: Path) -> str:
    """The family a font file names itself by ("DejaVu Sans")."""
    return ImageFont.FreeTypeFont(str(font), 12).getname()[0]


def iter_with_parents(root: Element) -> Iterator[tuple[Element, list[Element]]]:
    """Every element in document order with its ancestors, outermost first."""
    stack: list[tuple[Element, list[Element]]] = [(root, [])]
    while stack:
        element, parents = stack.pop()
        yield element, parents
        for child in reversed(list(element)):
            stack.append((child, [*parents, element]))
