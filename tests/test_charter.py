from pathlib import Path

import pytest
from PIL import Image
from visuels.errors import CharterError
from visuels.inputs.charter import load_charter

from tests.helpers import SAMPLE_CHARTER_DIR, edit_yaml


def test_sample_charter_loads() -> None:
    charter = load_charter(SAMPLE_CHARTER_DIR / "charter.yaml")
    assert charter.spec.name == "Région Solane"
    assert {colour.role.value for colour in charter.spec.palette} == {"primary", "secondary", "accent", "neutral"}
    assert charter.spec.ai_label.text["fr"] == "Image générée par IA"
    assert charter.spec.style.trigger_word in charter.spec.style.prompt
    references = sorted(charter.references.glob("*.png"))
    assert 10 <= len(references) <= 20
    assert all(path.with_suffix(".txt").is_file() for path in references)


def test_charter_hash_is_stable_and_follows_assets(charter_dir: Path) -> None:
    first = load_charter(charter_dir).hash
    assert load_charter(charter_dir).hash == first
    logo = charter_dir / "logos" / "solane-dark.png"
    with Image.open(logo) as image:
        image.rotate(180).save(logo)
    assert load_charter(charter_dir).hash != first


def _break(charter_dir: Path, change) -> CharterError:
    edit_yaml(charter_dir / "charter.yaml", change)
    with pytest.raises(CharterError) as caught:
        load_charter(charter_dir / "charter.yaml")
    return caught.value


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda d: d.update(colour_scheme="warm"), "colour_scheme", "unknown key"),
        (lambda d: d["palette"][1].update(hex="#C0583"), "palette[1].hex", "is not a colour: write it #RRGGBB"),
        (lambda d: d["palette"][0].update(hex="blue"), "palette[0].hex", "'blue' is not a colour"),
        (lambda d: d.update(palette=d["palette"][:1]), "palette", "at least 2"),
        (lambda d: d["palette"][0].update(role="favourite"), "palette[0].role", "primary"),
        (lambda d: d["logo"].update(colour="logos/missing.png"), "logo.colour", "not found"),
        (lambda d: d["logo"].update(min_width_share=0), "logo.min_width_share", "greater than 0"),
        (lambda d: d["ai_label"].update(text={"en": "AI"}), "ai_label.text", "French"),
        (lambda d: d["ai_label"].update(edited_text={"fr": "Image modifiée"}), "ai_label", "missing en, oc"),
        (lambda d: d["ai_label"].update(keep_in_crops=["3:2"]), "ai_label.keep_in_crops[0]", "'1:1', '4:5'"),
        (lambda d: d["style"].update(prompt="flat illustration"), "style.prompt", "trigger word"),
        (lambda d: d["logo"].update(allowed_corners=["top_right"]), "(top level)", "other than ai_label"),
        (lambda d: d["typography"].update(font="fonts/missing.ttf"), "typography.font", "not found"),
        (
            lambda d: d.update(
                palette=[
                    {"name": "a", "hex": "#777777", "role": "primary"},
                    {"name": "b", "hex": "#888888", "role": "neutral"},
                ]
            ),
            "(top level)",
            "text needs 4.5:1",
        ),
        (lambda d: d["palette_grading"].update(strength=1.5), "palette_grading.strength", "less than or equal to 1"),
        (lambda d: d["palette"][1].update(name="bleu-mer"), "palette", "'bleu-mer' and 'bleu-mer' have the same name"),
        (lambda d: d["palette"][2].update(hex="#c0583a"), "palette", "the same hex #c0583a"),
        (lambda d: d["palette"][1].update(role="primary"), "palette", "exactly one primary colour, has 2"),
    ],
)
def test_bad_charter_names_file_and_field(charter_dir: Path, change, field: str, words: str) -> None:
    error = _break(charter_dir, change)
    assert error.file.endswith("charter.yaml")
    assert error.field == field
    assert words in error.message


def test_logo_without_alpha_is_refused(charter_dir: Path) -> None:
    logo = charter_dir / "logos" / "solane-light.png"
    with Image.open(logo) as image:
        image.convert("RGB").save(logo)
    error = _break(charter_dir, lambda d: None)
    assert error.field == "logo.light"
    assert "alpha" in error.message


def test_font_that_is_not_a_font_is_refused(charter_dir: Path) -> None:
    (charter_dir / "fonts" / "DejaVuSans-Bold.ttf").write_text("not a font")
    error = _break(charter_dir, lambda d: None)
    assert error.field == "typography.font"
    assert "not a TrueType" in error.message


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_a_charter_saved_by_notepad_is_read_as_saved(charter_dir: Path, encoding: str) -> None:
    """Notepad saves UTF-8 with a byte order mark, or UTF-16 ("Unicode"): the communes CSV and the
    captions read both; the YAML files said "not UTF-8 text" of the second."""
    charter_file = charter_dir / "charter.yaml"
    text = charter_file.read_text(encoding="utf-8")
    charter_file.write_bytes(text.replace("\n", "\r\n").encode(encoding))
    assert load_charter(charter_file).spec.name == "Région Solane"


def test_invalid_yaml_names_the_line(charter_dir: Path) -> None:
    (charter_dir / "charter.yaml").write_text("name: [unclosed\nslug: x\n", encoding="utf-8")
    with pytest.raises(CharterError) as caught:
        load_charter(charter_dir / "charter.yaml")
    assert caught.value.field is not None and caught.value.field.startswith("line ")


@pytest.mark.parametrize(
    ("written", "line"),
    [
        ("  - name: bleu-mer\n    hex: #1B4F72\n    role: primary\n", 9),  # was "hex: Input should be a valid string"
        ("  - {name: bleu-mer, hex: #1b4f72, role: primary}\n", 8),  # was "line 9: expected the node content"
    ],
)
def test_a_colour_written_without_quotes_is_named_on_its_line(charter_dir: Path, written: str, line: int) -> None:
    """In YAML, `#` after a space starts a comment: a bare colour silently became nothing."""
    path = charter_dir / "charter.yaml"
    text = path.read_text(encoding="utf-8")
    first = next(row for row in text.splitlines(keepends=True) if "#1B4F72" in row)
    path.write_text(text.replace(first, written), encoding="utf-8")
    assert text.splitlines().index(first.rstrip("\n")) + 1 == 8  # the palette's first line
    with pytest.raises(CharterError) as caught:
        load_charter(path)
    assert caught.value.field == f"line {line}" and "write it in quotes" in caught.value.message
    path.write_text(text.replace("# for mid-tone", "# for mid-tone: #FFF"), encoding="utf-8")  # a comment: fine
    load_charter(path)


def test_a_file_named_in_another_case_is_pointed_at(charter_dir: Path) -> None:
    """A charter made on macOS (whose disk ignores case) read on the Linux render machine: "logo file
    not found: …/solane-colour.png" while the folder showed Solane-Colour.png."""
    (charter_dir / "logos").rename(charter_dir / "Logos")
    (charter_dir / "Logos" / "solane-colour.png").rename(charter_dir / "Logos" / "Solane-Colour.png")
    error = _break(charter_dir, lambda data: None)
    assert error.field == "logo.colour"
    assert error.message.endswith(f"(there is {charter_dir / 'Logos' / 'Solane-Colour.png'}: the names differ in case)")


def _svg_logo(fill: str, lettering: str = '<path d="M220 60 h300 v30 h-300 z" fill="{fill}"/>') -> str:
    """A logo as brand kits ship it: a mark and its lettering as outlines, on nothing."""
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 600 200">'
        f'<circle cx="100" cy="100" r="80" fill="{fill}"/>{lettering.format(fill=fill)}</svg>'
    )


def test_svg_logos_are_drawn_crisp_at_any_size_and_placed_like_pngs(charter_dir: Path) -> None:
    """A brand kit's SVG logos were "not a readable image": a region had to export PNGs first."""
    from visuels.inputs.logo_fit import logo_geometry
    from visuels.postprocess.logo import place_logo

    for variant, fill in (("colour", "#1B4F72"), ("light", "#FFFFFF"), ("dark", "#2B2B2B")):
        (charter_dir / "logos" / f"mark-{variant}.svg").write_text(_svg_logo(fill), encoding="utf-8")
    charter_file = edit_yaml(
        charter_dir / "charter.yaml",
        lambda data: data["logo"].update(
            {variant: f"logos/mark-{variant}.svg" for variant in ("colour", "light", "dark")}
        ),
    )
    charter = load_charter(charter_file)
    width, height, _ = logo_geometry(charter, 1080, 1080)
    assert abs(width / height - 3.0) < 0.05  # the viewBox's aspect (whole pixels)
    picture, placement = place_logo(Image.new("RGB", (1080, 1080), (250, 250, 250)), charter, avoid=[])
    assert placement.variant == "colour" and placement.contrast >= 3.0
    mark = picture.crop(placement.box.as_tuple())
    assert (27, 79, 114) in {colour for _, colour in mark.getcolors(1_000_000)}  # the logo's blue, drawn


@pytest.mark.parametrize(
    ("logo", "words"),
    [
        (_svg_logo("#1B4F72", '<text x="220" y="120" fill="{fill}">Solane</text>'), "convert it to outlines"),
        (_svg_logo("#1B4F72", "<script>alert(1)</script>"), "scripts"),
        ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 60 20"></svg>', "draws nothing"),
    ],
    ids=["live text", "script", "empty"],
)
def test_an_svg_logo_that_cannot_be_drawn_as_drawn_is_refused(charter_dir: Path, logo: str, words: str) -> None:
    (charter_dir / "logos" / "mark.svg").write_text(logo, encoding="utf-8")
    error = _break(charter_dir, lambda data: data["logo"].update(dark="logos/mark.svg"))
    assert error.field == "logo.dark" and "mark.svg" in error.message and words in error.message
