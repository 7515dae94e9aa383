"""Layout templates: slots read from SVG drawn elsewhere, checked like any input, filled, and
rendered to marked outputs with alt text and layered working files."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from visuels._internal.i18n import words
from visuels.errors import CampaignError, CharterError
from visuels.inputs.charter import load_charter
from visuels.inputs.formats import FORMAT_PRESETS
from visuels.inputs.svg import MAX_SVG_BYTES
from visuels.postprocess.chain import postprocess
from visuels.postprocess.compliance import assess
from visuels.postprocess.template_fill import LARGE_TEXT_PX, MIN_LARGE_TEXT_CONTRAST
from visuels.postprocess.typography import MIN_TEXT_CONTRAST

from tests.helpers import render_now, write_small_campaign

SQUARE = (1080, 1080)
# A template as Inkscape saves it: layer names in inkscape:label, groups moved by translate().
INKSCAPE = """<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape"
     width="1080" height="1080" viewBox="0 0 1080 1080">
  <rect id="rect1" x="0" y="0" width="1080" height="1080" fill="#F4E9D8"/>
  {before}
  <g inkscape:label="Calque 1" transform="translate(40,40)">
    <rect id="rect2" inkscape:label="image" x="0" y="0" width="1000" height="600" fill="#999"/>
    <rect id="rect3" inkscape:label="Commune-Center" x="0" y="640" width="1000" height="150" fill="none"/>
  </g>
  {decor}
  <rect id="rect4" inkscape:label="logo" x="60" y="860" width="300" height="120" fill="none"/>
  <rect id="rect5" data-name="headline" x="400" y="860" width="620" height="60" fill="none"/>
  <rect id="rect6" inkscape:label="ai_label" x="560" y="960" width="480" height="80" fill="none"/>
  {after_label}
</svg>
"""


def _template(folder: Path, decor: str = "", after_label: str = "", text: str | None = None, before: str = "") -> Path:
    path = folder / "square.svg"
    svg = text or INKSCAPE.format(before=before, decor=decor, after_label=after_label)
    path.write_text(svg, encoding="utf-8")
    return path


def _use_templates(charter_dir: Path, files: dict[str, str], name: str = "maison") -> Path:
    """The copied charter with the template set ``name``: format -> file in the charter folder."""
    charter_file = charter_dir / "charter.yaml"
    data = yaml.safe_load(charter_file.read_text(encoding="utf-8"))
    data["templates"] = {name: files}
    charter_file.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return charter_file


def _load(charter_dir: Path, svg: Path) -> object:
    return load_charter(_use_templates(charter_dir, {"instagram_square": svg.name})).templates["maison"][
        "instagram_square"
    ]


def test_a_template_drawn_in_inkscape_gives_its_slots_alignment_and_drawing_order(charter_dir: Path) -> None:
    template = _load(charter_dir, _template(charter_dir))
    image, commune = template.slots["image"], template.slots["commune"]
    assert (image.left, image.top, image.width, image.height) == (40, 40, 1000, 600)  # the group's translate
    assert (commune.align, commune.top) == ("center", 680)  # "Commune-Center": the name's alignment
    assert template.slots["ai_label"].valign == "bottom" and template.slots["headline"].align == "left"
    assert [part.slot or "decor" for part in template.parts] == [
        "decor", "image", "commune", "logo", "headline", "ai_label"
    ]  # fmt: skip
    assert template.findings == ()  # sable is the charter's


# The Inkscape template's picture and name boxes, drawn at twice their size: a group that halves
# them puts them where the plain template has them.
DOUBLED = '<rect id="rect2" inkscape:label="image" x="0" y="0" width="2000" height="1200" fill="#999"/>' + (
    '<rect id="rect3" inkscape:label="Commune-Center" x="0" y="1280" width="2000" height="300" fill="none"/>'
)


@pytest.mark.parametrize(
    "group",
    [
        '<g transform="matrix(0.5,0,0,0.5,40,40)">' + DOUBLED + "</g>",  # as Affinity writes another resolution
        '<g transform="translate(40 40) scale(0.5)">' + DOUBLED + "</g>",
        '<svg x="20"><g transform="translate(20,40) scale(.5)">' + DOUBLED + "</g></svg>",  # a nested viewport
    ],
    ids=["matrix", "list", "nested svg"],
)
def test_slots_placed_by_scales_and_nested_viewports_are_where_they_are_drawn(charter_dir: Path, group: str) -> None:
    """A slot in a group scaled along its axes is still an upright rectangle: it was refused as
    "rotated or scaled" (and a nested <svg>'s x was not counted)."""
    plain = _load(charter_dir, _template(charter_dir)).slots
    drawing = INKSCAPE.format(before="", decor="", after_label="")
    start = drawing.index('<g inkscape:label="Calque 1"')
    moved = drawing[:start] + group + drawing[drawing.index("</g>") + len("</g>") :]
    assert _load(charter_dir, _template(charter_dir, text=moved)).slots == plain


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda svg: svg.replace('inkscape:label="logo" ', ""), "slot 'logo' is missing"),
        (lambda svg: svg.replace('x="560" y="960" width="480"', 'x="760" y="960" width="480"'), "outside"),
        (lambda svg: svg.replace('viewBox="0 0 1080 1080"', 'viewBox="0 0 1000 1000"'), "1000x1000"),
        (lambda svg: svg.replace('y="860" width="620" height="60"', 'y="860" width="620" height="12"'), "12 px high"),
        (lambda svg: svg.replace('transform="translate(40,40)"', 'transform="rotate(3)"'), "upright"),
        (lambda svg: svg.replace('transform="translate(40,40)"', 'transform="skewX(5)"'), "upright"),
        (lambda svg: svg.replace('transform="translate(40,40)"', 'transform="scale(-1,1)"'), "upright"),
        (lambda svg: svg.replace('transform="translate(40,40)"', 'transform="translate(40 40"'), "cannot read"),
        (lambda svg: svg.replace("<g ", '<svg viewBox="0 0 9 9"><g ').replace("</g>", "</g></svg>"), "nested <svg>"),
        # Python reads "nan" and "1e400" as numbers; SVG does not: a NaN slot failed the render itself.
        (lambda svg: svg.replace("translate(40,40)", "matrix(1 0 0 1 nan 40)"), "cannot read"),
        (lambda svg: svg.replace("translate(40,40)", "translate(1e400)"), "cannot read"),
        (lambda svg: svg.replace('viewBox="0 0 1080 1080"', 'viewBox="0 0 inf 1080"'), "four numbers"),
        (
            lambda svg: svg.replace('x="60" y="860" width="300" height="120"', 'x="60" y="860" width="30" height="12"'),
            "the logo drawn in it is 30 px wide, the charter's smallest is 238 px",
        ),
    ],
    ids=[
        "missing slot",
        "slot off the artboard",
        "artboard size",
        "text box too small",
        "rotated slot",
        "skewed slot",
        "mirrored slot",
        "broken transform",
        "nested viewBox",
        "NaN in a transform",
        "infinity in a transform",
        "infinity in the viewBox",
        "logo slot under the charter's smallest logo",
    ],
)
def test_a_template_that_cannot_be_filled_is_refused_naming_the_file_and_the_slot(
    charter_dir: Path, change, words: str
) -> None:
    svg = _template(charter_dir, text=change(INKSCAPE.format(before="", decor="", after_label="")))
    with pytest.raises(CharterError, match=words) as refused:
        _load(charter_dir, svg)
    assert "square.svg" in str(refused.value) and "templates.maison.instagram_square" in str(refused.value)


def test_the_label_zone_is_locked_against_decor_drawn_over_it(charter_dir: Path) -> None:
    over = '<circle cx="800" cy="1000" r="30" fill="#F2B134"/>'
    with pytest.raises(CharterError, match="'ai_label' slot: the label zone is locked"):
        _load(charter_dir, _template(charter_dir, after_label=over))
    # Under the label (drawn before it) and beside it after it: allowed.
    _load(charter_dir, _template(charter_dir, decor=over, after_label='<circle cx="100" cy="100" r="30"/>'))


@pytest.mark.parametrize(
    ("decor", "words"),
    [
        ("<script>alert(1)</script>", "scripts"),
        ('<rect x="0" y="0" width="9" height="9" onclick="alert(1)"/>', "event handler"),
        ('<foreignObject width="9" height="9"><p>hi</p></foreignObject>', "scripts and embedded"),
        ('<a><set attributeName="href" to="javascript:alert(1)"/><rect width="9" height="9"/></a>', "animations"),
        ('<image href="https://example.org/a.png" width="9" height="9"/>', "outside the template"),
        ('<image href="file:///etc/passwd" width="9" height="9"/>', "outside the template"),
        ('<image href="../../secret.png" width="9" height="9"/>', "outside the template's folder"),
        ("<style>@import url(https://example.org/x.css);</style>", "imports a style sheet"),
        ('<rect width="9" height="9" style="fill:url(https://example.org/p.svg#g)"/>', "outside the template"),
        ("<g>" * 5000 + "</g>" * 5000, "nested 5001 deep: at most 100"),  # recursed past Python's stack
    ],
    ids=[
        "script",
        "event handler",
        "foreignObject",
        "animation setting a link",
        "URL",
        "file URL",
        "outside folder",
        "@import",
        "CSS url",
        "nesting",
    ],
)
def test_unsafe_svg_features_are_refused(charter_dir: Path, decor: str, words: str) -> None:
    with pytest.raises(CharterError, match=words):
        _load(charter_dir, _template(charter_dir, decor=decor))


ILLUSTRATOR_HEADER = """<?xml version="1.0" encoding="utf-8"?>
<!-- Generator: Adobe Illustrator 16.0.0, SVG Export Plug-In . SVG Version: 6.00 Build 0)  -->
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd" [
	<!ENTITY ns_extend "http://ns.adobe.com/Extensibility/1.0/">
	<!ENTITY ns_ai "http://ns.adobe.com/AdobeIllustrator/10.0/">
]>
"""


def test_what_illustrator_and_inkscape_write_around_a_drawing_is_read(charter_dir: Path) -> None:
    """Illustrator's "Save As" declares the SVG 1.1 DTD and entities naming its namespaces, and
    Inkscape saves compressed SVG (.svgz): both were refused ("declares a DTD", "not well-formed")."""
    plain = _load(charter_dir, _template(charter_dir))
    drawing = INKSCAPE.format(before="", decor="", after_label="")
    body = drawing.split("?>", 1)[1].replace('<svg xmlns="', '<svg xmlns:x="&ns_extend;" xmlns:i="&ns_ai;" xmlns="')
    illustrator = _load(charter_dir, _template(charter_dir, text=ILLUSTRATOR_HEADER + body))
    compressed = charter_dir / "square.svgz"
    compressed.write_bytes(gzip.compress(drawing.encode()))
    for template in (illustrator, _load(charter_dir, compressed)):
        assert template.slots == plain.slots and template.parts == plain.parts


@pytest.mark.parametrize(
    ("doctype", "words"),
    [
        ('<!DOCTYPE svg [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>', "more than plain text entities"),
        ('<!DOCTYPE svg [<!ENTITY a SYSTEM "file:///etc/passwd">]>', "more than plain text entities"),
        ('<!DOCTYPE svg [<!ENTITY % p "x"> %p;]>', "more than plain text entities"),
        ('<!DOCTYPE svg [<!ATTLIST svg onload CDATA "alert(1)">]>', "more than plain text entities"),
        ('<!DOCTYPE html [<!ENTITY a "x">]>', "DTD or entities"),
    ],
    ids=["nested", "external", "parameter", "attribute list", "another root"],
)
def test_declarations_beyond_plain_text_entities_are_refused(charter_dir: Path, doctype: str, words: str) -> None:
    text = '<?xml version="1.0"?>' + doctype + '<svg xmlns="http://www.w3.org/2000/svg"><text>&a;</text></svg>'
    with pytest.raises(CharterError, match=words):
        _load(charter_dir, _template(charter_dir, text=text))


def test_oversized_files_are_refused_however_they_grow(charter_dir: Path) -> None:
    padding = "<!--" + "x" * MAX_SVG_BYTES + "-->"
    with pytest.raises(CharterError, match="a template is at most"):
        _load(charter_dir, _template(charter_dir, decor=padding))
    laughs = '<!DOCTYPE svg [<!ENTITY a "' + "a" * 1000 + '">]><svg xmlns="http://www.w3.org/2000/svg">'
    with pytest.raises(CharterError, match="its entities expand it beyond"):
        _load(charter_dir, _template(charter_dir, text=laughs + "&a;" * 5000 + "</svg>"))
    bomb = charter_dir / "bomb.svgz"  # 3 MB of nothing, compressed to a few kB
    bomb.write_bytes(gzip.compress(INKSCAPE.format(before="", decor=padding + padding, after_label="").encode()))
    with pytest.raises(CharterError, match="once decompressed"):
        _load(charter_dir, bomb)


def test_decor_text_the_charter_font_cannot_set_is_refused(charter_dir: Path) -> None:
    """Decor text is drawn in the charter's font only: a character it lacks would vanish."""
    decor = '<text x="60" y="60" fill="#1B4F72">L’été <tspan>☀ 🌞</tspan></text>'
    with pytest.raises(CharterError, match="<text>: the charter's font has no glyph for 🌞"):
        _load(charter_dir, _template(charter_dir, decor=decor))


def test_decor_colours_outside_the_palette_are_findings_not_errors(charter_dir: Path) -> None:
    template = _load(
        charter_dir, _template(charter_dir, decor='<rect id="tache" width="90" height="90" fill="#00ff00"/>')
    )
    assert [str(finding) for finding in template.findings] == [
        "decor colour #00ff00 (<rect id='tache'>) is not in the charter's palette"
    ]
    assert [finding.said(words("fr")) for finding in template.findings] == [
        "la couleur de décor #00ff00 (<rect id='tache'>) n’est pas dans la palette de la charte"
    ]
    # A clip path's fill is never seen (Figma writes fill="white" in each frame's): no finding.
    clipped = '<clipPath id="c"><rect width="1080" height="1080" fill="white"/></clipPath><g clip-path="url(#c)"/>'
    assert _load(charter_dir, _template(charter_dir, decor=clipped)).findings == ()


def test_check_of_a_template_checks_it_with_the_charter_that_names_it(
    charter_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``visuels check layouts/square.svg``, as a designer runs it while drawing: the charter above
    it that names it holds it to its font, palette and label; its findings follow, exit 1."""
    from visuels.cli.main import main

    (charter_dir / "layouts").mkdir()
    svg = _template(charter_dir / "layouts", decor='<rect id="tache" width="90" height="90" fill="#00ff00"/>')
    charter = _use_templates(charter_dir, {"instagram_square": "layouts/square.svg", "story": "layouts/square.svg"})
    assert main(["check", str(svg)]) == 2  # one file for two formats: the story's artboard differs
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("square.svg: the artboard is 1080x1080, the format story is 1080x1920 pixels")
    )
    _use_templates(charter_dir, {"instagram_square": "layouts/square.svg"})
    assert main(["check", str(svg)]) == 1
    shown = capsys.readouterr().out.splitlines()
    assert shown == [
        f"ok  {svg}: template of layout 'maison' for instagram_square (1080x1080), slots image, commune, logo,"
        f" headline, ai_label, with charter {charter.resolve()}",
        "    decor colour #00ff00 (<rect id='tache'>) is not in the charter's palette",
    ]
    elsewhere = charter_dir.parent / "brouillon.svg"  # drawn, not yet named by any charter
    shutil.copy(svg, elsewhere)
    assert main(["check", str(elsewhere)]) == 2
    assert "names this template: name it under a charter's templates" in capsys.readouterr().err


def test_decor_text_asking_for_another_font_is_a_finding(charter_dir: Path) -> None:
    """Set in the charter's font all the same: its designer is told, whichever way the tool wrote it."""
    asking = (
        '<text id="slogan" x="60" y="1000" font-family="\'Montserrat\', sans-serif">Solane</text>',  # Figma, Inkscape
        '<text x="60" y="1000" style="font-size:20px;font-family:Montserrat-Bold">Solane</text>',
        '<g font-family="Montserrat"><text x="60" y="1000">Solane</text></g>',  # from its group
        '<text x="60" y="1000"><tspan style="font-family:Montserrat">Solane</tspan></text>',  # a span's own
        # Illustrator: a class of the style sheet
        "<defs><style>.cls-1,.cls-2{fill:#1b4f72;font-family:Montserrat-Bold, Montserrat;}</style></defs>"
        '<text class="cls-2" x="60" y="1000">Solane</text>',
    )
    for decor in asking:
        [finding] = _load(charter_dir, _template(charter_dir, decor=decor)).findings
        assert "asks for the font Montserrat" in str(finding) and "DejaVu Sans" in str(finding), decor
    said = finding.said(words("fr"))
    assert said.startswith("le texte de décor <text> demande la police Montserrat-Bold : il est composé dans")
    fine = (
        '<text x="60" y="1000" font-family="DejaVu Sans">Solane</text>',  # the charter's own
        '<text x="60" y="1000" font-family="sans-serif">Solane</text>',
        '<text x="60" y="1000">Solane</text>',
        '<clipPath id="c"><text font-family="Montserrat">x</text></clipPath>',  # never drawn
    )
    for decor in fine:
        assert _load(charter_dir, _template(charter_dir, decor=decor)).findings == (), decor


def _fill(charter_dir: Path, commune: str, before: str = "", picture: Image.Image | None = None):
    """The test template filled, with ``before`` drawn under its picture and texts."""
    svg = _template(charter_dir, before=before)
    charter = load_charter(_use_templates(charter_dir, {"instagram_square": svg.name}))
    template = charter.templates["maison"]["instagram_square"]
    picture = picture or Image.new("RGB", (400, 300), (90, 120, 160))
    result = postprocess(picture, charter, *SQUARE, "fr", commune, "Vivre en Solane, l'été", "", template)
    return charter, template, result


@pytest.mark.parametrize("commune", ["Sète", "Castelnau-d'Estrétefonds", "Saint-Guilhem-le-Désert"])
def test_texts_are_fitted_inside_their_slots_aligned_as_named(charter_dir: Path, commune: str) -> None:
    charter, template, result = _fill(charter_dir, commune)
    for text in [result.text.name, *result.text.below]:
        assert text.fits and text.size >= charter.spec.typography.min_text_px
    slot = template.slots["commune"]
    box = result.text.box  # the texts' union: the commune's box lies inside its slot
    layers = {layer.name: layer for layer in result.layers}
    drawn = layers["texte : commune"].image.getbbox()
    assert slot.left <= drawn[0] and drawn[2] <= slot.left + slot.width
    assert slot.top <= drawn[1] and drawn[3] <= slot.top + slot.height
    centre = (drawn[0] + drawn[2]) / 2  # "commune_center"
    assert abs(centre - (slot.left + slot.width / 2)) <= 3
    assert box.width > 0 and result.image.size == SQUARE
    assert [layer.kind for layer in result.layers] == ["decor", "picture", "text", "logo", "text", "label"]


def test_a_text_that_cannot_fit_at_the_smallest_size_stops_the_plan_naming_its_slot(
    charter_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from visuels.planning.plan import plan_render

    text = INKSCAPE.format(before="", decor="", after_label="").replace(
        'x="0" y="640" width="1000" height="150"', 'x="0" y="640" width="120" height="20"'
    )
    _use_templates(charter_dir, {"instagram_square": _template(charter_dir, text=text).name})
    campaign = write_small_campaign(
        tmp_path / "campaign.yaml", layout="maison", formats=["instagram_square"], communes={
            "file": "charter/communes.csv", "names": ["Castelnau-d'Estrétefonds"]}
    )  # fmt: skip
    with pytest.raises(CampaignError, match=r"overflows slot 'commune' of square\.svg") as refused:
        plan_render(campaign, tmp_path / "outputs")
    assert "layout" in str(refused.value) and not (tmp_path / "outputs").exists()
    # `visuels check` says it too, before any render is asked for.
    from visuels.cli.main import main

    assert main(["check", str(campaign)]) == 2
    assert "overflows slot 'commune'" in capsys.readouterr().err


def test_text_contrast_is_measured_against_what_is_behind_it(charter_dir: Path) -> None:
    dark_band = '<rect x="0" y="660" width="1080" height="200" fill="#1B4F72"/>'
    _, _, on_dark = _fill(charter_dir, "Sète", before=dark_band)
    assert on_dark.text.contrast >= MIN_TEXT_CONTRAST  # the light palette colour was chosen
    layers = {layer.name: layer for layer in on_dark.layers}
    ink = np.asarray(layers["texte : commune"].image)
    assert ink[ink[..., 3] == 255][:, :3].mean() > 200  # light ink on the sea-blue band
    # A band from black to white: neither the darkest nor the lightest palette colour reads on
    # all of it (the measure takes the 5th and 95th percentiles of what is behind the text).
    gradient = (
        '<defs><linearGradient id="g"><stop offset="0" stop-color="#000000"/><stop offset="1" stop-color="#ffffff"/>'
        '</linearGradient></defs><rect x="0" y="660" width="1080" height="200" fill="url(#g)"/>'
    )
    charter, _, on_grey = _fill(charter_dir, "Sète", before=gradient)
    compliance = assess(on_grey, charter)
    required = MIN_LARGE_TEXT_CONTRAST if on_grey.text.name.size >= LARGE_TEXT_PX else MIN_TEXT_CONTRAST
    assert on_grey.text.contrast < required and not compliance.passed
    assert any(reason.startswith("text contrast") for reason in compliance.reasons)


@pytest.mark.integration
def test_a_template_campaign_renders_marked_outputs_with_alt_text_and_a_layered_file(
    charter_dir: Path, tmp_path: Path, renderer
) -> None:
    from psd_tools import PSDImage
    from visuels.planning.plan import plan_render
    from visuels.record.database import Database, database_url
    from visuels.review.layers import layered_file

    campaign = write_small_campaign(
        tmp_path / "campaign.yaml", layout="bande", formats=["instagram_square", "web_banner"], steps=2,
        communes={"file": "charter/communes.csv", "names": ["Sète"]},
    )  # fmt: skip
    out = tmp_path / "outputs"
    plan = plan_render(campaign, out)
    exported = render_now(renderer, plan, out)
    assert len(exported) == 2 and all(item.compliance.passed for item in exported), [
        item.compliance.reasons for item in exported
    ]
    charter = load_charter(charter_dir)
    for item in exported:
        path = out / item.job.relative_path
        assert (
            item.job.alt_text.startswith("Test campagne, Sète : la mer") and "Image générée par IA" in item.job.alt_text
        )
        if shutil.which("exiftool"):
            read = subprocess.run(
                ["exiftool", "-json", "-XMP-iptcCore:all", str(path)], capture_output=True, text=True, check=True
            )
            # A language alternative: exiftool names it with its language.
            assert json.loads(read.stdout)[0]["AltTextAccessibility-fr"] == item.job.alt_text
        assert item.job.layout == "bande" and item.job.template_hash == (
            charter.templates["bande"][item.job.format].sha256
        )

    square = out / next(item.job.relative_path for item in exported if item.job.format == "instagram_square")
    database = Database(database_url(out))
    try:
        written = layered_file(square, charter, database, out)
    finally:
        database.close()
    psd = PSDImage.open(written.path)
    names = [layer.name for layer in psd]
    assert names == ["décor 1", "image générée", "décor 2", "texte : commune", "logo", "mention IA"]  # no headline here
    assert psd.size == (FORMAT_PRESETS["instagram_square"].width, FORMAT_PRESETS["instagram_square"].height)
    flattened = np.asarray(psd.composite().convert("RGB"), dtype=np.int16)
    original = np.asarray(Image.open(square).convert("RGB"), dtype=np.int16)
    assert np.abs(flattened - original).mean() < 2  # the layers put back together are the output
    # Sète's pictures start from its photo: the output's label says "modifiée", and so does the
    # label layer (it said "générée": a designer exporting from it published the wrong label).
    label = next(layer for layer in psd if layer.name == "mention IA")
    box = (slice(label.top, label.bottom), slice(label.left, label.right))
    assert all(item.job.photo is not None for item in exported)
    assert (np.abs(flattened[box] - original[box]).max(axis=2) > 24).mean() < 0.01  # but the mark's few levels
    # The picture layer is the output's own pixels wherever nothing lay over the picture: the
    # watermark's signal is kept there, untouched.
    full = [Image.new("RGBA", psd.size) for _ in psd]
    for canvas, layer in zip(full, psd, strict=True):
        canvas.paste(layer.topil().convert("RGBA"), (layer.left, layer.top))
    alphas = [np.asarray(canvas.getchannel("A")) for canvas in full]
    picture = names.index("image générée")
    free = (alphas[picture] == 255) & ~np.any([alpha > 0 for alpha in alphas[picture + 1 :]], axis=0)
    assert free.mean() > 0.3
    kept = np.asarray(full[picture].convert("RGB"), dtype=np.int16)
    assert np.array_equal(kept[free], original[free])
    assert b"Fichier de travail" in psd.image_resources.get_data(1060)  # XMP: a working file
    # Asked again: the same file, once; a designer's work saved in it is never written over.
    database = Database(database_url(out))
    try:
        assert layered_file(square, charter, database, out).path == written.path
        with written.path.open("ab") as worked_on:
            worked_on.write(b"a designer's layers")
        again = layered_file(square, charter, database, out).path
    finally:
        database.close()
    assert again == written.path.with_stem(f"{written.path.stem}-2")
    assert written.path.read_bytes().endswith(b"a designer's layers")
    # Of an approved copy: beside its export, never in approved/ (the next report sets aside
    # whatever is there unapproved).
    copy = out / plan.campaign_slug / "approved" / square.relative_to(out / plan.campaign_slug)
    copy.parent.mkdir(parents=True)
    shutil.copyfile(square, copy)
    database = Database(database_url(out))
    try:
        of_the_copy = layered_file(copy, charter, database, out).path
    finally:
        database.close()
    assert of_the_copy == again and not list(copy.parent.glob("*.psd"))  # the same layers: the same file


def test_the_report_holds_large_template_text_to_three_to_one(charter_dir: Path) -> None:
    from visuels.review.report import WORDINGS, Thresholds, _measures

    dark_band = '<rect x="0" y="660" width="1080" height="200" fill="#1B4F72"/>'
    charter, _, filled = _fill(charter_dir, "Sète", before=dark_band)
    check = assess(filled, charter).model_dump()
    limits = Thresholds(palette=0.5, label_px=14, style_distance=30.0)
    assert filled.text.name.size >= LARGE_TEXT_PX and check["text_required_contrast"] == MIN_LARGE_TEXT_CONTRAST
    line, met = _measures(check, WORDINGS["fr"], limits)[-1]
    assert "(min 3:1)" in line and met
    older = {key: value for key, value in check.items() if key != "text_required_contrast"}  # an older record
    assert "(min 4,5:1)" in _measures(older, WORDINGS["fr"], limits)[-1][0]
