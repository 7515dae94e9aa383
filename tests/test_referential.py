"""Every commune of France by its official name and code: the shipped COG 2026, campaigns that
select from it, and communes files checked against it (real codes throughout)."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from visuels.cli import main
from visuels.errors import CampaignError, CommunesError
from visuels.inputs import build_referential
from visuels.inputs.campaign import load_campaign
from visuels.inputs.communes import load_communes
from visuels.inputs.referential import REFERENTIAL_FILE, load_referential

from tests.helpers import write_small_campaign

HEADER = "insee,name,department,landscapes,landmarks\n"


def test_the_shipped_referential_is_the_cog_2026_as_etalab_publishes_it() -> None:
    referential = load_referential()
    assert "@etalab/decoupage-administratif 6.0.0" in referential.source
    assert "Licence Ouverte" in referential.credit and "INSEE" in referential.credit
    assert len(referential.current) == 34_969
    assert referential.current["34301"].name == "Sète" and referential.current["34301"].region == "76"
    assert referential.regions["76"] == "Occitanie" and referential.departments["34"][0] == "Hérault"
    assert REFERENTIAL_FILE.stat().st_size < 1_000_000  # small enough to live in git


def test_a_campaign_selects_from_the_referential_without_a_csv_and_joins_a_csv_by_code(charter_dir: Path) -> None:
    referential = load_referential()
    herault = write_small_campaign(charter_dir.parent / "herault.yaml", communes={"departments": ["34"]})
    communes = load_campaign(herault).communes
    assert len(communes) == sum(entry.department == "34" for entry in referential.current.values()) == 341
    towns = write_small_campaign(
        charter_dir.parent / "towns.yaml",
        communes={"regions": ["76"], "population": {"min": 50_000}, "details": "charter/communes.csv"},
    )
    chosen = {commune.name: commune for commune in load_campaign(towns).communes}
    expected = {e.name for e in referential.current.values() if e.region == "76" and (e.population or 0) >= 50_000}
    assert set(chosen) == expected and {"Toulouse", "Montpellier", "Nîmes", "Perpignan"} <= expected
    assert chosen["Toulouse"].landmarks  # its row of the CSV, joined by code
    assert not chosen["Tarbes"].landmarks if "Tarbes" in chosen else True
    epci = referential.current["34301"].epci
    by_epci = write_small_campaign(charter_dir.parent / "epci.yaml", communes={"epci": [epci]})
    members = {commune.insee for commune in load_campaign(by_epci).communes}
    assert "34301" in members and members == {e.code for e in referential.current.values() if e.epci == epci}
    homonym = write_small_campaign(charter_dir.parent / "homonym.yaml", communes={"names": ["Saint-Pierre"]})
    with pytest.raises(CampaignError, match=r"'Saint-Pierre' names 9 communes: .*give the INSEE code"):
        load_campaign(homonym)


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        # Conques merged into the commune nouvelle Conques-en-Rouergue: its code is retired.
        (
            "12076,Conques-en-Rouergue,12,village,abbatiale",
            "line 2, insee",
            "12076 is the delegated commune Conques, part of the commune Conques-en-Rouergue (12218, department 12)"
            " in the 2026 COG: use 12218",
        ),
        (
            "48146,Saint-Chély-d'Apcher,48,mountain,Margeride",
            "line 2, name",
            "48146 is Gorges du Tarn Causses in the 2026 COG, not Saint-Chély-d'Apcher; Saint-Chély-d'Apcher is"
            " 48140 (department 48)",
        ),
        ("34999,Sète,34,sea,phare", "line 2, insee", "34999 is not a commune in the 2026 COG (Sète is 34301"),
        (
            "75101,Paris 1er Arrondissement,75,city,Louvre",
            "line 2, insee",
            "75101 is the district Paris 1er Arrondissement, part of the commune Paris (75056",
        ),
    ],
)
def test_a_communes_file_with_an_unknown_retired_or_misnamed_code_is_refused(
    tmp_path: Path, row: str, field: str, words: str
) -> None:
    path = tmp_path / "communes.csv"
    path.write_text(HEADER + row + "\n", encoding="utf-8")
    with pytest.raises(CommunesError) as caught:
        load_communes(path)
    assert caught.value.file == str(path) and caught.value.field == field
    assert words in caught.value.message


def test_check_lists_every_finding_of_a_communes_file_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "communes.csv"
    rows = ["34301,Sete,34,sea,phare", "12076,Conques,12,village,abbatiale", "48146,Saint-Chély-d'Apcher,48,mountain,x"]
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    assert main(["check", str(path)]) == 2  # a render would refuse it
    captured = capsys.readouterr()
    assert f"{path}: line 2, name: the official spelling is 'Sète'" in captured.out
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2 and errors[0].startswith(f"error: {path}: line 3, insee: 12076 is the delegated")
    assert errors[1].startswith(f"error: {path}: line 4, name: 48146 is Gorges du Tarn Causses")
    path.write_text(HEADER + rows[0] + "\n", encoding="utf-8")
    assert main(["check", str(path)]) == 1  # a spelling only: a finding, rendered all the same
    assert load_communes(path)[0].name == "Sete"


def _package(communes: list[dict]) -> bytes:
    """A package tarball laid out as Etalab's, holding ``communes``."""
    files = {
        "communes": communes,
        "departements": [{"code": "34", "nom": "Hérault", "region": "76"}],
        "regions": [{"code": "76", "nom": "Occitanie"}],
        "epci": [{"code": "243400017", "nom": "Sète Agglopôle", "membres": [{"code": "34301"}]}],
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            data = json.dumps(content).encode()
            info = tarfile.TarInfo(f"package/data/{name}.json")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_the_build_script_checks_its_tarball_and_writes_the_same_bytes_every_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sete = {"code": "34301", "nom": "Sète", "type": "commune-actuelle", "departement": "34", "region": "76"}
    tarball = _package([sete | {"codesPostaux": ["34200"], "population": 44_000}])
    with pytest.raises(build_referential.IntegrityError):
        build_referential.derive(tarball)  # not the pinned package: refused
    monkeypatch.setattr(build_referential, "_checked", lambda data: data)
    derived = build_referential.derive(tarball)
    assert derived["communes"] == [["34301", "Sète", "current", "34", "76", "243400017", "34200", 44_000, "", ""]]
    assert build_referential.encode(derived) == build_referential.encode(build_referential.derive(tarball))
    assert json.loads(gzip.decompress(build_referential.encode(derived)))["epci"] == {"243400017": "Sète Agglopôle"}


def test_the_shipped_file_is_what_the_script_derives_from_the_pinned_package() -> None:
    """Needs the package's tarball (no network in tests): VISUELS_COG_TARBALL names it, as
    `python -m visuels.inputs.build_referential` downloads it."""
    tarball = os.environ.get("VISUELS_COG_TARBALL")
    if not tarball or not Path(tarball).is_file():
        pytest.skip("VISUELS_COG_TARBALL: the package's tarball is not at hand")
    derived = build_referential.encode(build_referential.derive(Path(tarball).read_bytes()))
    assert derived == REFERENTIAL_FILE.read_bytes()
