import csv
import io
import shutil
import unicodedata
from pathlib import Path

import pytest
from visuels.errors import CommunesError
from visuels.inputs.communes import load_communes, referential_findings

from tests.helpers import SAMPLE_CHARTER_DIR

HEADER = "insee,name,department,landscapes,landmarks\n"


def test_sample_communes_are_real_names_with_their_accents() -> None:
    communes = load_communes(SAMPLE_CHARTER_DIR / "communes.csv")
    assert len(communes) >= 40
    by_code = {commune.insee: commune for commune in communes}
    assert by_code["31118"].name == "Castelnau-d'Estrétefonds"
    assert by_code["31555"].name == "Toulouse"
    assert by_code["34301"].name == "Sète"
    assert len({commune.department for commune in communes}) == 13  # every department of Occitanie
    assert all(1 <= len(commune.landmarks) <= 2 for commune in communes)


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        ("343,Sète,34,sea,phare", "line 2, insee", "is not an INSEE code"),
        ("3430,Sète,34,sea,phare", "line 2", "INSEE code 03430 is not in department 34"),
        ("34301,Sète,31,sea,phare", "line 2", "not in department 31"),
        ("34301,Sète,34,beach,phare", "line 2, landscapes", "sea"),
        ("34301,Sète,34,sea,", "line 2, landmarks", "one or two landmarks"),
        ("34301,Sète,34,sea,phare;port;canal", "line 2, landmarks", "3 given, two at most"),
        ("34301,Sète ,34,sea,phare", "line 2, name", "spaces"),
        ("34301,Sète,34,sea,phare,extra", "line 2", "more values"),
        ("34301,../../etc/passwd,34,sea,phare", "line 2, name", "is not a commune name"),
        ("34301,/abs,34,sea,phare", "line 2, name", "is not a commune name"),
        ("34301,Sè\x00te,34,sea,phare", "line 2, name", "control character"),
        ("34301,C:\\Windows,34,sea,phare", "line 2, name", "backslash"),
    ],
)
def test_bad_row_names_line_and_column(tmp_path: Path, row: str, field: str, words: str) -> None:
    path = tmp_path / "communes.csv"
    path.write_text(HEADER + row + "\n", encoding="utf-8")
    with pytest.raises(CommunesError) as caught:
        load_communes(path)
    assert caught.value.file == str(path)
    assert caught.value.field == field
    assert words in caught.value.message


def test_duplicate_code_and_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "communes.csv"
    path.write_text(HEADER + "34301,Sète,34,sea,phare\n34301,Sète,34,sea,phare\n", encoding="utf-8")
    with pytest.raises(CommunesError, match="duplicate code 34301"):
        load_communes(path)
    path.write_text("insee,name,department\n34301,Sète,34\n", encoding="utf-8")
    with pytest.raises(CommunesError, match="missing column"):
        load_communes(path)


def test_a_file_saved_with_a_byte_order_mark_reads_like_any_other(tmp_path: Path) -> None:
    path = tmp_path / "communes.csv"
    path.write_text("\ufeff" + HEADER + "34301,Sète,34,sea,phare\n", encoding="utf-8")  # as spreadsheets save
    assert [commune.name for commune in load_communes(path)] == ["Sète"]


@pytest.mark.parametrize(
    ("delimiter", "encoding"),
    [(";", "utf-8-sig"), ("\t", "utf-16"), (",", "utf-16")],
    ids=["French spreadsheet (semicolons)", "Excel's Unicode text (tabs, UTF-16)", "UTF-16 commas"],
)
def test_a_file_a_spreadsheet_saves_reads_like_the_sample(tmp_path: Path, delimiter: str, encoding: str) -> None:
    """French Excel saves CSV with semicolons (quoting a list that holds one); its "Unicode text" is
    UTF-16 with tabs: both were "missing column(s): insee, name…" or "not UTF-8 text"."""
    sample = SAMPLE_CHARTER_DIR / "communes.csv"
    with sample.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    saved = io.StringIO(newline="")
    csv.writer(saved, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    path = tmp_path / "communes.csv"
    path.write_bytes(saved.getvalue().encode(encoding))
    shutil.copytree(SAMPLE_CHARTER_DIR / "photos", tmp_path / "photos")
    assert '"mountain;heritage"' in saved.getvalue() or delimiter != ";"

    def read(file: Path) -> list[tuple]:
        return [
            (c.insee, c.name, c.landscapes, c.landmarks, [p.path.name for p in c.photos]) for c in load_communes(file)
        ]

    assert read(path) == read(sample)


def test_codes_a_spreadsheet_stripped_of_their_leading_zero_read_as_the_codes_they_were(tmp_path: Path) -> None:
    """Excel reads 01004 as the number 1004 and saves it so (and department 01 as 1): the file was
    refused, "'1004' is not an INSEE code", though no code has four digits."""
    path = tmp_path / "communes.csv"
    path.write_text(HEADER + "1004,Ambérieu-en-Bugey,1,mountain,gare\n9122,Foix,9,mountain,château\n", "utf-8")
    assert [(c.insee, c.department) for c in load_communes(path)] == [("01004", "01"), ("09122", "09")]


def test_names_saved_decomposed_read_as_the_official_ones(tmp_path: Path) -> None:
    """macOS tools may save "è" as "e" + a combining accent: every accented name was a finding ("the
    official spelling is 'Nîmes'", identical to the eye) and would have made another key and folder."""
    path = tmp_path / "communes.csv"
    path.write_text(unicodedata.normalize("NFD", HEADER + "34301,Sète,34,sea,phare\n30189,Nîmes,30,city,arènes\n"))
    communes = load_communes(path)
    assert [c.name for c in communes] == ["Sète", "Nîmes"] and communes[1].landmarks == ["arènes"]
    assert referential_findings(communes) == []


def test_a_header_in_capitals_and_spaces_after_the_commas_read_as_typed(tmp_path: Path) -> None:
    """`INSEE,Name,…` was "missing column(s): insee, name…"; `insee, name, department` missed every
    column but the first."""
    path = tmp_path / "communes.csv"
    path.write_text("INSEE, Name, Department, Landscapes, Landmarks\n34301, Sète, 34, sea, phare\n", "utf-8")
    (commune,) = load_communes(path)
    assert (commune.insee, commune.name, commune.department, commune.landmarks) == ("34301", "Sète", "34", ["phare"])


def test_rows_and_columns_a_spreadsheet_left_empty_are_left_out(tmp_path: Path) -> None:
    """Excel keeps rows that were cleared (`;;;;`) and trailing separators: "line 3, insee: '' is
    not an INSEE code" and "unknown column(s): , "."""
    path = tmp_path / "communes.csv"
    path.write_text(HEADER.rstrip("\n") + ",,\n34301,Sète,34,sea,phare,,\n,,,,,,\n,,,,,,\n", "utf-8")
    assert [commune.name for commune in load_communes(path)] == ["Sète"]
    path.write_text(HEADER.rstrip("\n") + ",\n34301,Sète,34,sea,phare,forgotten\n", "utf-8")
    with pytest.raises(CommunesError, match="column 6 holds a value but has no name") as caught:
        load_communes(path)
    assert caught.value.field == "line 2"


def test_a_bad_row_after_blank_lines_is_named_by_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "communes.csv"
    path.write_text(HEADER + "34301,Sète,34,sea,phare\n\n\n3430,Agde,34,sea,phare\n", "utf-8")
    with pytest.raises(CommunesError) as caught:
        load_communes(path)
    assert caught.value.field == "line 5"  # it said line 3: the blank lines were not counted
    path.write_text(HEADER + ",,,,\n34301,Sète,34,sea,phare\n\n34302,Sete,34,sea,phare\n", "utf-8")
    # 34302 is another commune than "Sete": said on its own line, past an emptied row and a blank line.
    assert [finding.line for finding in referential_findings(load_communes(path, False))] == [5]
