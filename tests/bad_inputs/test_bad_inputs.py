"""The bad-input corpus: every case in ``cases.yaml``, run as a user would run it.

Each case starts from a private copy of the sample charter (``{charter}``), its communes file
and a small campaign over them (``{campaign}``), breaks one thing, then runs one command line.
It must end with exactly the line the case states on stderr, exit code 2, no traceback, and
nothing written: no output folder, no file added or changed beside the broken input.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image
from visuels.cli import main

from tests.helpers import SAMPLE_CHARTER_DIR

CASES = yaml.safe_load((Path(__file__).parent / "cases.yaml").read_text(encoding="utf-8"))
CAMPAIGN = {
    "name": "Corpus",
    "charter": "charter/charter.yaml",
    "communes": {"file": "charter/communes.csv", "names": ["Sète"]},
    "model": {"kind": "demo"},
    "prompt": "poster of {commune}, {landscape}, {season}, for {audience}",
    "season": "summer",
    "audiences": {"residents": "local families"},
    "formats": ["instagram_square"],
    "steps": 3,
}


def _refuse(*arguments: object) -> None:
    pytest.fail("bad input reached the flow")


def _set(data: Any, dotted: str, value: Any, delete: bool = False) -> None:
    """Set (or delete) ``a.b.0.c`` in nested dicts and lists."""
    *parents, last = dotted.split(".")
    for part in parents:
        data = data[int(part)] if isinstance(data, list) else data.setdefault(part, {})
    key: Any = int(last) if isinstance(data, list) else last
    if delete:
        del data[key]
    else:
        data[key] = value


def _picture(kind: str, path: Path) -> None:
    """A broken or hostile picture at ``path``."""
    if kind == "rgb":  # a logo without alpha
        Image.new("RGB", (64, 64), (200, 30, 30)).save(path)
    elif kind == "truncated":
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[:2000])
    elif kind == "huge":  # a decompression bomb: 144 megapixels in a few hundred kB
        Image.new("1", (12000, 12000)).save(path)
    elif kind == "tiny":
        Image.new("RGBA", (1, 1)).save(path)
    else:
        raise ValueError(kind)


def _apply(case: dict, root: Path, places: dict[str, str]) -> None:
    for name, changes in case.get("yaml", {}).items():
        path = root / {"charter": "charter/charter.yaml", "campaign": "campaign.yaml"}[name]
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for dotted, value in changes.get("set", {}).items():
            _set(data, dotted, value)
        for dotted in changes.get("delete", []):
            _set(data, dotted, None, delete=True)
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    for relative, text in case.get("text", {}).items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text.format(**places), encoding="utf-8")
    for relative, hexadecimal in case.get("bytes", {}).items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(bytes.fromhex(hexadecimal))
    for relative, kind in case.get("picture", {}).items():
        _picture(kind, root / relative)
    for relative, target in case.get("symlink", {}).items():
        (root / relative).unlink(missing_ok=True)
        (root / relative).symlink_to(target.format(**places))
    for row in case.get("communes_rows", []):
        with (root / "charter" / "communes.csv").open("a", encoding="utf-8") as handle:
            handle.write(row + "\n")
    if "communes_encoding" in case:
        communes = root / "charter" / "communes.csv"
        communes.write_bytes(communes.read_text(encoding="utf-8").encode(case["communes_encoding"]))


def _files(root: Path) -> dict[str, int]:
    """Every file (or link) under ``root`` with its modification time; folders are left out, as
    SQLite touches its folder when it opens a record for reading."""
    return {
        str(path.relative_to(root)): path.lstat().st_mtime_ns
        for path in root.rglob("*")
        if path.is_symlink() or not path.is_dir()
    }


def _corpus(case: dict, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The case's folder, broken as it says, and its placeholders."""
    root = tmp_path / "corpus"
    shutil.copytree(SAMPLE_CHARTER_DIR, root / "charter", ignore=shutil.ignore_patterns("references"))
    shutil.copytree(SAMPLE_CHARTER_DIR / "references", root / "charter" / "references")
    (root / "campaign.yaml").write_text(yaml.safe_dump(CAMPAIGN, allow_unicode=True), encoding="utf-8")
    places = {"root": str(root), "charter": str(root / "charter"), "campaign": str(root / "campaign.yaml")}
    places["out"] = str(root / "out")
    _apply(case, root, places)
    if case.get("database"):  # a record to verify against, as an earlier render left it
        from visuels.record.database import Database

        Database(f"sqlite:///{root / 'record' / 'visuels.sqlite'}").close()
    return root, places


def _run(argv: list[str]) -> int:
    try:
        return main(argv, render=_refuse, train=_refuse)  # type: ignore[arg-type]
    except SystemExit as exit:  # argparse's own errors
        return int(exit.code or 0)


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_bad_input_is_one_line_its_exit_code_and_nothing_written(
    case: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, places = _corpus(case, tmp_path)
    for name, value in case.get("env", {}).items():
        monkeypatch.setenv(name, value.format(**places))
    before = _files(root)

    argv = [argument.format(**places) for argument in case["argv"]]
    code = _run(argv)
    assert code == case.get("exit", 2)  # 2: bad input; 3: the environment (a damaged database)

    error = capsys.readouterr().err
    assert "Traceback" not in error
    if case.get("last_line"):  # argparse: its usage, then the one line that matters
        assert error.startswith("usage: ")
        error = error.strip().splitlines()[-1]
    assert error.strip() == case["expect"].format(**places)
    assert not (root / "out").exists()
    assert _files(root) == before  # nothing added, nothing rewritten


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_bad_input_is_said_in_french_to_a_french_user(
    case: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same line in French: its words from the catalogue, the names and values as they were
    (the case's ``expect_fr`` when it gives the exact line)."""
    _, places = _corpus(case, tmp_path)
    for name, value in case.get("env", {}).items():
        monkeypatch.setenv(name, value.format(**places))
    argv = [argument.format(**places) for argument in case["argv"]]
    assert _run(argv) == case.get("exit", 2)
    english = capsys.readouterr().err.strip().splitlines()[-1]
    monkeypatch.setenv("VISUELS_LANGUAGE", "fr")
    assert _run(argv) == case.get("exit", 2)
    error = capsys.readouterr().err
    assert "Traceback" not in error
    if case.get("last_line"):
        assert error.startswith("utilisation : ")
    french = error.strip().splitlines()[-1]
    assert "erreur : " in french and french != english
    if "expect_fr" in case:
        assert french == case["expect_fr"].format(**places)
