"""French and English: every text the studio's pages and the code ask for in both languages has
its French, every visible text of a studio page goes through the catalogue, and the pages follow
the browser's or the designer's choice."""

from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path

import pytest
import yaml
from jinja2 import Environment
from pydantic_core import PydanticKnownError
from visuels._internal.i18n import LOCALES, WrittenNumber, browser_language, language_of, words

REPO = Path(__file__).resolve().parents[1]
STUDIO_TEMPLATES = REPO / "pipelines" / "studio" / "templates"
DETECTOR_TEMPLATES = REPO / "pipelines" / "detector" / "templates"
# A call ``_("...")``, ``_.plural("...", "...", n)`` or ``words(lang)("...")`` in a template or in the code.
TEMPLATE_TEXT = re.compile(r'_(?:\.plural)?\(\s*"((?:[^"\\]|\\.)*)"(?:\s*,\s*"((?:[^"\\]|\\.)*)")?')
# A page script's text said with a count: the pair [_("1 …"), _("{count} …")].
SCRIPT_PAIR = re.compile(r'\[_\("((?:[^"\\]|\\.)*)"\), _\("((?:[^"\\]|\\.)*)"\)\]')
# Run by the project's maintainers only, never by a designer: English.
MAINTAINERS_SCRIPTS = {"build_referential.py"}
# Words that are the same in both languages: names, units, symbols.
SAME_IN_BOTH = {"visuels studio", "English", "Français", "img2img", "PSD", "UTC"}
# The kinds of pydantic error a charter, a campaign, an option or a form can give (with the
# context pydantic fills their pattern from).
PYDANTIC_KINDS = {
    "extra_forbidden": None,
    "string_type": None,
    "string_too_short": {"min_length": 1},
    "string_too_long": {"max_length": 1},
    "string_pattern_mismatch": {"pattern": ""},
    "int_type": None,
    "int_parsing": None,
    "int_from_float": None,
    "float_type": None,
    "float_parsing": None,
    "bool_type": None,
    "bool_parsing": None,
    "list_type": None,
    "dict_type": None,
    "model_type": {"class_name": ""},
    "model_attributes_type": None,
    "literal_error": {"expected": ""},
    "enum": {"expected": ""},
    "greater_than": {"gt": 0},
    "greater_than_equal": {"ge": 0},
    "less_than": {"lt": 0},
    "less_than_equal": {"le": 0},
    "too_short": {"field_type": "", "min_length": 0, "actual_length": 0},
    "too_long": {"field_type": "", "max_length": 0, "actual_length": 0},
    "finite_number": None,
    "union_tag_invalid": {"discriminator": "", "tag": "", "expected_tags": ""},
    "union_tag_not_found": {"discriminator": ""},
    "none_required": None,
}


def _asked_in_templates() -> set[str]:
    asked = set()
    for path in [*STUDIO_TEMPLATES.glob("*.html"), *DETECTOR_TEMPLATES.glob("*.html")]:
        for one, many in TEMPLATE_TEXT.findall(path.read_text(encoding="utf-8")):
            asked |= {json.loads(f'"{text}"') for text in (one, many) if text}
    return asked


def _asked_in_code() -> set[str]:
    """Texts given to a ``Words`` in the code: the first argument of calls to ``words(...)(...)``,
    to a name bound to ``words(...)``, to ``t`` (a ``Words`` by convention), or to ``.plural``."""
    asked = set()
    for folder in ("pipelines", "flows"):
        for path in (REPO / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            bound = {"t"} | {
                target.id
                for node in ast.walk(tree)
                if isinstance(node, ast.Assign) and _is_words_call(node.value)
                for target in node.targets
                if isinstance(target, ast.Name)
            }
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                function = node.func
                is_words = (
                    _is_words_call(function)
                    or (isinstance(function, ast.Name) and function.id in bound)
                    or (isinstance(function, ast.Attribute) and function.attr == "t")
                )
                is_plural = isinstance(function, ast.Attribute) and function.attr == "plural"
                texts = node.args[:2] if is_plural else node.args[:1] if is_words else [_message_of(node)]
                asked |= {arg.value for arg in texts if isinstance(arg, ast.Constant) and isinstance(arg.value, str)}
    return asked


def _singular_forms() -> set[str]:
    """The singular forms given to ``plural`` in the code and the templates that say a number: French
    says 0 things in the singular too, so its singular names ``{count}`` where the English says 1."""
    forms = set()
    for folder in ("pipelines", "flows"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and _called(node) == "plural" and isinstance(node.args[0], ast.Constant):
                    forms.add(node.args[0].value)
    for path in [*STUDIO_TEMPLATES.glob("*.html"), *DETECTOR_TEMPLATES.glob("*.html")]:
        source = path.read_text(encoding="utf-8")
        pairs = TEMPLATE_TEXT.findall(source) + SCRIPT_PAIR.findall(source)
        forms |= {json.loads(f'"{one}"') for one, many in pairs if many}
    return {form for form in forms if re.search(r"(?<![\d,.])1(?![\d,.:])", form)}


def _called(node: ast.Call) -> str:
    function = node.func
    if isinstance(function, ast.Name):
        return function.id
    return function.attr if isinstance(function, ast.Attribute) else ""


def _message_of(node: ast.Call) -> ast.expr | None:
    """The message pattern of an error or a ``Text``: ``SomeError(file, field, "pattern", ...)``,
    ``InvalidValueError("pattern", ...)``, ``Text("pattern", ...)``, ``refuse("pattern", ...)``."""
    name = _called(node)
    if name in ("Text", "InvalidValueError", "SvgRefusedError", "refuse"):
        return node.args[0] if node.args else None
    if (name.endswith("Error") or name == "error_type") and len(node.args) >= 3:
        return node.args[2]
    return None


def _messages_written_in_place() -> list[str]:
    """Error messages made as f-strings: their words cannot be looked up in a catalogue."""
    found = []
    for folder in ("pipelines", "flows"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and isinstance(_message_of(node), ast.JoinedStr):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def _printed_in_place() -> list[str]:
    """Lines the ``visuels`` command or ``make serve`` prints with words of their own
    (``print(f"... of {n} files")``): words the catalogue cannot hold, said in English to every reader."""
    found = []
    for path in [*(REPO / "pipelines").rglob("*.py"), *(REPO / "flows").rglob("*.py")]:
        if path.name in MAINTAINERS_SCRIPTS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and _called(node) == "print" and node.args):
                continue
            printed = node.args[0]
            parts = printed.values if isinstance(printed, ast.JoinedStr) else [printed]
            own = " ".join(
                part.value for part in parts if isinstance(part, ast.Constant) and isinstance(part.value, str)
            )
            if re.search(r"[A-Za-z]{3,}", re.sub(r"\[/?[\w ]+\]", "", own)):  # rich's [bold] tags are not words
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def _asked_in_run_forms() -> set[str]:
    """The deployments' descriptions and their run forms' labels and explanations, as `make serve`
    registers them (``prefect.yaml``, the flows' parameter schemas)."""
    from prefect.utilities.callables import parameter_schema
    from visuels.flows.forms import form_texts, plain

    asked = set()
    for deployment in yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))["deployments"]:
        module, _, name = deployment["entrypoint"].partition(":")
        flow = getattr(importlib.import_module(module), name)
        asked |= {plain(deployment["description"])} | form_texts(parameter_schema(flow.fn).model_dump())
    return asked


def _pydantic_patterns() -> set[str]:
    """pydantic's own messages for the kinds of error our configuration models can give."""
    return {PydanticKnownError(kind, context).message_template for kind, context in PYDANTIC_KINDS.items()}


def _is_words_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "words"


def test_every_text_asked_for_has_its_french() -> None:
    from visuels.planning import fairness
    from visuels.postprocess import findings

    catalogue = json.loads((LOCALES / "fr.json").read_text(encoding="utf-8"))
    asked = _asked_in_templates() | _asked_in_code() | _pydantic_patterns() | _asked_in_run_forms()
    asked |= set(findings.PATTERNS + findings.CORNERS)  # recorded in English, said in French
    asked |= set(fairness.FLAG_PATTERNS + fairness.SEVERITIES)
    assert len(asked) > 50
    missing = sorted(asked - set(catalogue))
    assert not missing, f"no French for {missing} in pipelines/_internal/locales/fr.json"
    singular = _singular_forms()
    for english, french in catalogue.items():  # the same {names} in both, and the count in French's singular
        named = set(re.findall(r"{(\w*)}", english)) | ({"count"} if english in singular else set())
        assert named == set(re.findall(r"{(\w*)}", french)), english
    unused = sorted(set(catalogue) - asked)
    assert not unused, f"French for texts nothing asks for: {unused}"


def test_error_messages_are_patterns_the_catalogue_can_hold() -> None:
    """``SomeError(file, field, "unknown commune '{name}'", name=...)``, never an f-string."""
    assert not _messages_written_in_place()


def test_what_the_command_prints_goes_through_the_catalogue() -> None:
    """Every line ``visuels`` and ``make serve`` print has its words from ``t(...)`` or a ``Text``."""
    assert not _printed_in_place()


def test_every_visible_text_of_a_studio_page_goes_through_the_catalogue() -> None:
    """Text between tags, outside Jinja and scripts, has no words of its own: they come from ``_()``."""
    environment = Environment()
    for path in [*STUDIO_TEMPLATES.glob("*.html"), *DETECTOR_TEMPLATES.glob("*.html")]:
        source = path.read_text(encoding="utf-8")
        data = "".join(value for _, kind, value in environment.lex(source) if kind == "data")
        data = re.sub(r"<(script|style)\b.*?</\1>", "", data, flags=re.S)
        for attribute in ("alt", "title", "placeholder", "aria-label"):  # read aloud or shown
            leftover = re.findall(rf'{attribute}="([^"]*[A-Za-zÀ-ÿ][^"]*)"', data)
            assert not leftover, (path.name, attribute, leftover)
        text = re.sub(r"<[^>]*>", " ", data)
        for word in re.findall(r"[A-Za-zÀ-ÿ][\w'’-]*", text):
            assert any(word in same.split() for same in SAME_IN_BOTH), (path.name, word)


@pytest.mark.parametrize(
    ("tag", "lang"), [("fr_FR.UTF-8", "fr"), ("fr-CA", "fr"), ("en_GB", "en"), ("oc", "en"), ("", "en"), (None, "en")]
)
def test_a_locale_or_a_tag_gives_french_or_english(tag: str | None, lang: str) -> None:
    assert language_of(tag) == lang


def test_the_browser_language_follows_its_weights() -> None:
    assert browser_language("fr-FR,fr;q=0.9,en;q=0.8") == "fr"
    assert browser_language("de-DE,en;q=0.7,fr;q=0.9") == "fr"
    assert browser_language("en-US") == "en"
    assert browser_language("de") is None and browser_language(None) is None


def test_words_fill_their_values_and_count() -> None:
    french = words("fr")
    assert french("Page {page} of {pages}", page=2, pages=7) == "Page 2 sur 7"
    assert words("en").plural("1 output", "{count} outputs", 3) == "3 outputs"
    assert french.plural("1 output", "{count} outputs", 1) == "1 image"
    # French counts none in the singular, English in the plural.
    assert french.plural("1 not compliant", "{count} not compliant", 0) == "0 non conforme"
    assert words("en").plural("1 not compliant", "{count} not compliant", 0) == "0 not compliant"
    assert french.plural("1 file", "{count} files", 2) == "2 fichiers"
    # A region's counts, their thousands parted as each language writes them ("106704 pictures" before).
    assert words("en").plural("1 file", "{count} files", 106_704) == "106,704 files"
    assert french.plural("1 file", "{count} files", 106_704) == "106\u202f704 fichiers"


def test_a_catalogue_is_read_once_however_often_its_words_are_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """A report asks for the words of its language for each row: a region's 100,000 rows read
    fr.json 300,000 times (half of the report's minute) when the catalogue was not kept."""
    words.cache_clear()
    read = []
    monkeypatch.setattr(Path, "read_text", lambda path, *args, **kwargs: read.append(path.name) or "{}")
    for _ in range(3):
        words("fr")
        words("fr_FR.UTF-8")
    assert read == ["fr.json"] * 2  # the tag as asked, once each
    words.cache_clear()


def test_the_command_line_speaks_the_users_language(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from visuels.cli import main
    from visuels.cli.main import build_parser

    monkeypatch.setenv("VISUELS_LANGUAGE", "fr")
    assert main(["check", "nowhere.yaml"]) == 2
    assert capsys.readouterr().err.startswith("erreur : nowhere.yaml")
    parser, commands = build_parser()
    assert "utilisation :" in parser.format_help() and "valider des chartes" in parser.format_help()
    assert "afficher cette aide et quitter" in commands["render"].format_help()
    assert "\noptions :\n" in commands["render"].format_help()  # French spaces the heading's colon
    monkeypatch.setenv("VISUELS_LANGUAGE", "")
    monkeypatch.setenv("LANG", "fr_FR.UTF-8")  # no setting: the locale's
    monkeypatch.delenv("LANGUAGE", raising=False)
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    assert "valider des chartes" in build_parser()[0].format_help()


def test_an_error_keeps_its_words_across_processes_and_says_them_in_either_language() -> None:
    """A CPU worker's error is rebuilt in the parent: its pattern, values and field come along."""
    import pickle

    from visuels.errors import CommunesError, Text

    hint = Text(" (did you mean '{name}'?)", name="Sète")
    error = CommunesError(
        "communes.csv", Text("line {line}", line=4), "unknown commune '{wanted}'{hint}", wanted="Sette", hint=hint
    )
    rebuilt = pickle.loads(pickle.dumps(error))
    assert str(rebuilt) == "communes.csv: line 4: unknown commune 'Sette' (did you mean 'Sète'?)" == str(error)
    assert (
        rebuilt.said(words("fr")) == "communes.csv: ligne 4: commune inconnue « Sette » (vouliez-vous dire « Sète » ?)"
    )
    assert rebuilt.field == "line 4" and rebuilt.message == "unknown commune 'Sette' (did you mean 'Sète'?)"


def test_the_run_form_is_said_in_french_and_sends_the_same_values() -> None:
    from prefect.utilities.callables import parameter_schema
    from visuels.flows.forms import form_in_words
    from visuels.flows.render_campaign import render_campaign

    schema = parameter_schema(render_campaign.fn).model_dump()
    french = form_in_words(schema, words("fr"))
    assert french["properties"]["review"]["title"] == "Envoyer en relecture"
    assert french["properties"]["selection"]["properties"]["max_communes"]["title"] == "Au plus ce nombre de communes"
    assert french["properties"]["campaign"]["description"].startswith("Le fichier de la campagne")
    for unchanged in ("enum", "default"):  # what the form sends: the flow's values
        assert french["properties"]["review"][unchanged] == schema["properties"]["review"][unchanged]
    assert french["properties"]["run"]["default"] == schema["properties"]["run"]["default"]


def test_the_charter_checks_findings_are_said_in_french_earlier_records_included() -> None:
    """The record keeps each reason and note in English, as earlier records have them; the report
    and the studio read them back through their patterns and say them in the page's language."""
    from visuels.postprocess import findings
    from visuels.review.report import WORDINGS

    for pattern in findings.PATTERNS:
        recorded = pattern.format(**{name: "2.5" for name in re.findall(r"{(\w+)}", pattern)})
        assert findings.said(recorded, words("en")) == recorded
        french = findings.said(recorded, words("fr"))
        assert french == words("fr")(pattern, **{name: "2,5" for name in re.findall(r"{(\w+)}", pattern)})
        assert french != recorded, pattern
    recorded = ["logo moved from top left: contrast there 2.1:1 < 3:1", "a finding of another kind"]
    assert WORDINGS["fr"].findings(recorded) == [
        "logo déplacé de son coin (en haut à gauche) : contraste là 2,1:1 < 3:1",
        "a finding of another kind",
    ]
    from visuels.review.decisions import attention

    failed = {"compliance": {"passed": False, "reasons": ["palette 45% < 50%", "text runs off the picture"]}}
    [why] = attention(failed)  # the studio's review list, and the review run's description
    assert why.said(words("fr")) == "non conforme : palette 45 % < 50 % ; le texte sort de l’image"
    assert str(why) == "not compliant: palette 45% < 50%; text runs off the picture"


def test_the_bias_reviews_flags_are_said_in_french() -> None:
    """A job's flags are recorded in English with it; the report, the studio's review list and
    `visuels check` say them in the reader's language, the charter's terms as written."""
    from visuels.planning.fairness import Finding, said
    from visuels.review.decisions import attention

    flag = Finding("sensitive", "immigrés", "prompt", commune="Sète", audience="residents", language="fr").message()
    assert flag == "sensitive term 'immigrés' in prompt (commune Sète, audience residents, language fr)"
    french = "terme sensible « immigrés » dans prompt (commune Sète, public residents, langue fr)"
    assert said(flag, words("fr")) == french and said(flag, words("en")) == flag
    assert said(Finding("banned", "x", "headline").message(), words("fr")) == "terme interdit « x » dans headline"
    [why] = attention({"inputs": {"review": [flag]}})
    assert why.said(words("fr")) == french and str(why) == flag


def test_numbers_are_written_as_each_language_writes_them() -> None:
    """A French line said "perte 0.3912 (12.5% de moins)" and, in one sentence, "3.2:1" beside "4,5:1"."""
    import numpy as np

    french, english = words("fr"), words("en")
    pattern = "the palette's lightest and darkest colours contrast {ratio:.1f}:1, text needs 4.5:1"
    assert english(pattern, ratio=3.25) == "the palette's lightest and darkest colours contrast 3.2:1, text needs 4.5:1"
    assert french(pattern, ratio=3.25).endswith("contrastent à 3,2:1, le texte demande 4,5:1")
    assert french("step {step} of {total}, loss {loss:.4f}", step=1200, total=5000, loss=np.float32(0.12345)) == (
        "pas 1200 sur 5000, perte 0,1235"
    )
    assert format(WrittenNumber(0.125, "fr"), ".1%") == "12,5 %" and format(WrittenNumber(1234567, "fr"), ",") == (
        "1\u202f234\u202f567"
    )
    assert format(WrittenNumber(0.125, "en"), ".1%") == "12.5%" and repr(WrittenNumber(2, "fr")) == "2"
    # Texts stay as they are, a version or a name with its dots.
    assert french("{count} pictures, run {run}", count=3, run="2026.12") == "3 images, rendu 2026.12"
