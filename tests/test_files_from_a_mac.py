"""Files as a Mac leaves them. Hidden files beside a project's own: copying to a shared drive, it
writes ``._NAME`` (its AppleDouble: resource fork and Finder data, not a picture) beside each
file, Finder a ``.DS_Store``, a bin ``.Trash/``; none is a photo, a reference, a picture to verify
or weights. Names with accents stored decomposed (``e`` then a combining accent), which a credit
or a charter typed elsewhere spells composed: the same name to a person, found as such."""

from __future__ import annotations

import shutil
import unicodedata
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from visuels.cli.files import pictures_named
from visuels.inputs.charter import load_charter
from visuels.inputs.communes import load_communes
from visuels.inputs.photos import check_decodes
from visuels.inputs.weight_files import component_weights
from visuels.planning.jobs import folder_hash
from visuels.postprocess.coherence import reference_signature
from visuels.training.dataset import training_set_problems

from tests.helpers import SAMPLE_CHARTER_DIR

APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(64)


def _beside_each(folder: Path) -> None:
    """What a Mac leaves on a shared drive: ``._NAME`` beside each file, a ``.DS_Store``."""
    for path in [path for path in folder.iterdir() if path.is_file()]:
        (folder / f"._{path.name}").write_bytes(APPLE_DOUBLE)
    (folder / ".DS_Store").write_bytes(bytes(32))


def test_a_photo_folder_copied_from_a_mac_is_read_as_its_credits_say(tmp_path: Path) -> None:
    """Its ``._stand-in-harbour.jpg`` was "in the folder but not credited": the campaign refused."""
    folder = tmp_path / "p"
    shutil.copytree(SAMPLE_CHARTER_DIR / "photos" / "34301-sete", folder)
    _beside_each(folder)
    csv_path = tmp_path / "communes.csv"
    csv_path.write_text("insee,name,department,landscapes,landmarks,photos\n34301,Sète,34,sea,canaux,p\n", "utf-8")
    (commune,) = load_communes(csv_path)
    assert sorted(photo.path.name for photo in commune.photos) == ["stand-in-harbour.jpg", "stand-in-hill.jpg"]
    check_decodes(commune.photos)


def test_references_copied_from_a_mac_train_and_measure_as_the_pictures_alone(tmp_path: Path) -> None:
    """Its ``._01-sea.png`` failed the style baseline of every report (not a picture: a traceback),
    and `visuels check` of the charter said training would stop on it."""
    charter_dir = tmp_path / "charter"
    shutil.copytree(SAMPLE_CHARTER_DIR, charter_dir)
    before = reference_signature(load_charter(charter_dir))
    _beside_each(charter_dir / "references")
    charter = load_charter(charter_dir)
    assert reference_signature(charter) == before
    assert training_set_problems(charter.references, 64) == []


def test_a_folder_to_verify_stands_for_its_pictures_not_a_macs_files_beside_them(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "poster.png")
    _beside_each(tmp_path)
    (tmp_path / ".Trash").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / ".Trash" / "old.png")
    assert pictures_named([tmp_path]) == [tmp_path / "poster.png"]


def test_weights_copied_from_a_mac_are_the_weights_alone(tmp_path: Path) -> None:
    """A ``._pytorch_lora_weights.safetensors`` beside a LoRA changed its hash (every job's key: the
    campaign rendered again) and a ``._model.bin`` made a component look like pickle weights."""
    save_file({"w": torch.ones(2)}, tmp_path / "pytorch_lora_weights.safetensors")
    before = folder_hash(tmp_path)
    _beside_each(tmp_path)
    (tmp_path / "._diffusion_pytorch_model.bin").write_bytes(APPLE_DOUBLE)
    assert folder_hash(tmp_path) == before
    held = component_weights(tmp_path)
    assert held.plain and not held.pickle and not held.variants


@pytest.mark.parametrize("name", ["._ete-2027.yaml", ".ete-2027.yaml.swp"])
def test_a_hidden_campaign_file_is_no_campaign(tmp_path: Path, name: str) -> None:
    from visuels.planning.request import campaign_files

    (tmp_path / "ete-2027.yaml").write_text("name: x\n", encoding="utf-8")
    (tmp_path / name).write_bytes(APPLE_DOUBLE)
    assert campaign_files(tmp_path) == [tmp_path / "ete-2027.yaml"]


def test_a_photo_and_a_logo_named_on_a_mac_are_found_from_names_typed_elsewhere(tmp_path: Path) -> None:
    """ "Sète-port.jpg" as macOS stores it (decomposed) was "photo not found" for its credit, typed
    composed, then "in the folder but not credited"; a logo likewise."""
    typed = "Sète-port.jpg"
    stored = unicodedata.normalize("NFD", typed)
    assert stored != typed
    folder = tmp_path / "p"
    folder.mkdir()
    Image.new("RGB", (320, 240), (20, 90, 160)).save(folder / stored)
    (folder / "photos.yaml").write_text(
        f"photos:\n  - {{file: {typed}, author: X, licence: CC0, date: 2025-01-01}}\n", encoding="utf-8"
    )
    csv_path = tmp_path / "communes.csv"
    csv_path.write_text("insee,name,department,landscapes,landmarks,photos\n34301,Sète,34,sea,canaux,p\n", "utf-8")
    (commune,) = load_communes(csv_path)
    assert [photo.path.name for photo in commune.photos] == [stored]
    charter_dir = tmp_path / "charter"
    shutil.copytree(SAMPLE_CHARTER_DIR, charter_dir)
    (charter_dir / "logos" / "solane-colour.png").rename(
        charter_dir / "logos" / unicodedata.normalize("NFD", "sòlane.png")
    )
    charter_file = charter_dir / "charter.yaml"
    text = charter_file.read_text(encoding="utf-8").replace("logos/solane-colour.png", "logos/sòlane.png")
    charter_file.write_text(text, encoding="utf-8")
    assert load_charter(charter_dir).logo_colour.name == unicodedata.normalize("NFD", "sòlane.png")
