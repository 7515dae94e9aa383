"""Retouched and outside-edited files: marked again, recorded against their original, verified with the chain."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file, save_file
from visuels.cli import main
from visuels.engine.renderer import Renderer
from visuels.errors import ModelError
from visuels.inputs.model_refs import LoraWeights
from visuels.planning.plan import plan_render
from visuels.record.database import Database
from visuels.record.ledger import verify_chain

from tests.helpers import ledger_rows, render_now


def _cli(out: Path, charter: Path, *argv: str) -> int:
    return main([*argv, "--database", str(out / "visuels.sqlite"), "--charter", str(charter)])


def test_a_resaved_stripped_file_finalized_from_its_original_verifies(
    exported: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original, out, charter = exported
    # What Photoshop or GIMP does: decode, paint, save without the metadata (no C2PA, no XMP).
    edited = Image.open(original).convert("RGB")
    ImageDraw.Draw(edited).rectangle((400, 300, 600, 500), fill=(40, 90, 160))
    edited_path = tmp_path / "edited.png"
    edited.save(edited_path)
    assert _cli(out, charter, "verify", str(edited_path)) == 1  # unmarked as it comes
    capsys.readouterr()

    assert _cli(out, charter, "finalize", str(edited_path), "--from", str(original)) == 0
    final = tmp_path / "edited-final.png"
    assert final.is_file() and oct(final.stat().st_mode & 0o777) == "0o644"
    assert "marked" in capsys.readouterr().out

    assert _cli(out, charter, "verify", "--json", str(final)) == 0
    [report] = json.loads(capsys.readouterr().out)
    original_row = ledger_rows(out)[0]
    assert report["ok"] and report["c2pa"] in ("Trusted", "Valid")
    assert report["xmp_source_type"].endswith("compositeWithTrainedAlgorithmicMedia")
    assert report["c2pa_edited_from"] == original.name
    assert report["original"]["job_key"] == original_row["job_key"]
    assert report["original"]["sha256"] == original_row["sha256"]
    assert report["ledger_record"]["parent_id"] == original_row["id"]
    assert report["watermark"] != original_row["watermark"]  # a payload of its own

    # Again: nothing new is written or recorded.
    rows = len(ledger_rows(out))
    assert _cli(out, charter, "finalize", str(edited_path), "--from", str(original)) == 0
    assert "already marked" in capsys.readouterr().out
    assert len(ledger_rows(out)) == rows
    database = Database(f"sqlite:///{out / 'visuels.sqlite'}")
    assert verify_chain(database)[1] is None
    database.close()


def test_finalize_finds_the_original_through_the_watermark_and_draws_a_hidden_label_again(
    exported: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original, out, charter = exported
    edited = Image.open(original).convert("RGB")
    width, height = edited.size
    ImageDraw.Draw(edited).rectangle((width // 2, 0, width, height // 4), fill=(250, 250, 250))  # over the label
    edited.save(tmp_path / "no-label.jpg", quality=90)
    assert _cli(out, charter, "finalize", str(tmp_path / "no-label.jpg"), "-o", str(tmp_path / "out.png")) == 0
    printed = capsys.readouterr().out
    assert "the AI label was drawn again in its place (the edit had hidden it)" in printed
    assert ledger_rows(out)[-1]["parent_id"] == ledger_rows(out)[0]["id"]
    # The deliverable carries its label again: it verifies, label and all.
    assert _cli(out, charter, "verify", "--json", str(tmp_path / "out.png")) == 0
    [report] = json.loads(capsys.readouterr().out)
    assert report["label_seen"] and report["ok"]


def test_finalize_and_verify_speak_french_and_keep_english_for_tools(
    exported: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a French designer reads after an edit: the verdicts, each failed check and the charter's
    notes in French; ``--json`` keeps them in English for tools."""
    original, out, charter = exported
    monkeypatch.setenv("VISUELS_LANGUAGE", "fr")
    edited = Image.open(original).convert("RGB")
    width, height = edited.size
    ImageDraw.Draw(edited).rectangle((width // 2, 0, width, height // 4), fill=(250, 250, 250))  # over the label
    edited.save(tmp_path / "edited.jpg", quality=90)

    assert _cli(out, charter, "verify", str(tmp_path / "edited.jpg")) == 1
    printed = capsys.readouterr().out
    assert f"BAD {tmp_path / 'edited.jpg'} : mention non, filigrane " in printed
    assert "C2PA manque ; registre n° 1 par filigrane" in printed
    assert "    c2pa: aucun manifeste C2PA" in printed and "    label: aucune mention IA dans un coin" in printed
    assert "1 fichier : 0 ok, 1 BAD" in printed
    for english in ("label no", "ledger #", "no C2PA manifest", "file: 0 ok"):
        assert english not in printed

    assert _cli(out, charter, "finalize", str(tmp_path / "edited.jpg"), "-o", str(tmp_path / "final.png")) == 0
    printed = capsys.readouterr().out
    assert ": marqué (registre n° 2, d’après " in printed and " des pixels modifiés" in printed, printed
    assert "la mention IA a été redessinée à sa place (la retouche l’avait cachée)" in printed, printed

    assert _cli(out, charter, "verify", "--json", str(tmp_path / "edited.jpg")) == 1
    [report] = json.loads(capsys.readouterr().out)
    assert report["checks"]["c2pa"]["detail"] == "no C2PA manifest"


def test_an_unchanged_output_reexported_as_jpeg_is_not_an_edit_of_its_logo_or_label(
    exported: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    from visuels.inputs.charter import load_charter
    from visuels.review.derivatives import check_edit, find_original

    original, out, charter_dir = exported
    charter = load_charter(charter_dir)
    database = Database(f"sqlite:///{out / 'visuels.sqlite'}")
    try:
        record = find_original(database, original, out)
    finally:
        database.close()
    before = Image.open(original).convert("RGB")
    for quality in (75, 90):
        Image.open(original).convert("RGB").save(tmp_path / "export.jpg", quality=quality)
        check = check_edit(before, Image.open(tmp_path / "export.jpg").convert("RGB"), charter, record)
        assert check.changed_share < 0.002 and not check.logo_touched and not check.label_touched, check
        assert check.passed and not check.notes, check
    painted = before.copy()
    ImageDraw.Draw(painted).rectangle((400, 300, 600, 500), fill=(40, 90, 160))
    painted.save(tmp_path / "painted.jpg", quality=75)
    check = check_edit(before, Image.open(tmp_path / "painted.jpg").convert("RGB"), charter, record)
    assert 0.02 < check.changed_share < 0.06  # the 200x200 square of 1080x1080 (3.4 %), seen through JPEG


def test_finalize_refuses_what_it_cannot_link(
    exported: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original, out, charter = exported
    assert _cli(out, charter, "finalize", str(original)) == 2
    assert "unchanged: nothing to finalize" in capsys.readouterr().err
    Image.effect_noise((64, 64), 50).convert("RGB").save(tmp_path / "stranger.png")
    assert _cli(out, charter, "finalize", str(tmp_path / "stranger.png")) == 2
    error = capsys.readouterr().err
    assert "stranger.png: original: no ledger record" in error and "Traceback" not in error
    assert not (tmp_path / "stranger-final.png").exists()
    rows = len(ledger_rows(out))
    with Image.open(original) as picture:  # cut down to a strip: no room for the label it would carry
        picture.crop((0, 0, picture.width, 12)).save(tmp_path / "strip.png")
    assert _cli(out, charter, "finalize", str(tmp_path / "strip.png"), "--from", str(original)) == 2
    error = capsys.readouterr().err
    assert "strip.png: edited: 1080x12 pixels: too small to carry the AI label, " in error, error
    assert not (tmp_path / "strip-final.png").exists() and len(ledger_rows(out)) == rows


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_a_retouch_changes_only_the_masked_area(
    exported: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original, out, charter = exported
    with Image.open(original) as picture:
        size = picture.size
        before = np.asarray(picture.convert("RGB"), dtype=np.int16)
    mask = np.zeros((size[1], size[0]), dtype=bool)
    mask[200:520, 300:700] = True
    Image.fromarray((mask * 255).astype(np.uint8)).save(tmp_path / "mask.png")
    code = _cli(
        out,
        charter,
        "retouch",
        str(original),
        "--mask",
        str(tmp_path / "mask.png"),
        "--prompt",
        "a red boat",
        "--strength",
        "1",  # repaint the masked area from noise: at 0.85 the demo model keeps much of a 2-step original
        "--variants",
        "2",
        "--seed",
        "5",
        "-o",
        str(tmp_path / "variants"),
    )
    assert code == 0, capsys.readouterr()
    capsys.readouterr()
    variants = sorted((tmp_path / "variants").glob("*-retouch-*.png"))
    assert [path.name.split("-retouch-")[1] for path in variants] == ["5.png", "6.png"]
    pictures = []
    for path in variants:
        after = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
        changed = np.abs(after - before).max(axis=2) > 16  # the new watermark moves pixels by a few levels only
        outside, inside = changed[~mask].mean(), changed[mask].mean()
        assert outside < 0.002, f"{outside:.2%} of the pixels outside the mask changed"
        assert inside > 0.5, f"only {inside:.2%} of the masked pixels changed"
        pictures.append(after)
    assert np.abs(pictures[0] - pictures[1]).max() > 16  # two seeds, two variants

    assert _cli(out, charter, "verify", "--json", *map(str, variants)) == 0
    reports = json.loads(capsys.readouterr().out)
    assert all(report["original"]["file"] == ledger_rows(out)[0]["file"] for report in reports)
    assert all(report["ledger_record"]["prompt"] == "retouch (inpainting): a red boat" for report in reports)


def test_a_retouch_refuses_another_model_and_a_mask_of_another_size(
    exported: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original, out, charter = exported
    Image.new("L", (100, 60), 255).save(tmp_path / "small-mask.png")  # another shape (the same is resized)
    assert (
        _cli(out, charter, "retouch", str(original), "--mask", str(tmp_path / "small-mask.png"), "--prompt", "x") == 2
    )
    assert "--mask: is 100x60 but the picture is" in capsys.readouterr().err
    other = tmp_path / "other-model"
    (other / "unet").mkdir(parents=True)
    assert (
        _cli(out, charter, "retouch", str(original), "--mode", "img2img", "--prompt", "x", "--model", str(other)) == 2
    )
    assert "Traceback" not in capsys.readouterr().err
    assert _cli(out, charter, "retouch", str(original), "--prompt", "x", "-o", str(original)) == 2  # a file, as folder
    assert capsys.readouterr().err.strip().endswith(": --output-dir: is a file: the output folder must be a folder")
    assert _cli(out, charter, "retouch", str(original), "--mode", "img2img", "--prompt", "  ") == 2  # spaces: no prompt
    assert capsys.readouterr().err.strip().endswith("--prompt: empty: give it a value")


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_retouch_uses_the_recorded_lora_and_its_scale(
    make_campaign: Callable[..., Path], tmp_path: Path, renderer: Renderer, lora_file: Path
) -> None:
    from visuels.inputs.images import read_picture
    from visuels.review.derivatives import find_original
    from visuels.review.retouch import RetouchSettings, retouch, retouch_model

    out = tmp_path / "outputs"
    one = {"file": "charter/communes.csv", "names": ["Sète"]}
    campaign = make_campaign(
        steps=2, formats=["instagram_square"], communes=one, lora={"path": str(lora_file), "scale": 0.7}
    )
    [item] = render_now(renderer, plan_render(campaign, out), out)
    database = Database(f"sqlite:///{out / 'visuels.sqlite'}")
    try:
        original = find_original(database, out / item.job.relative_path, out)
        model = retouch_model(database, original)
        assert model.lora is not None and model.lora.scale == 0.7 and Path(model.lora.path) == lora_file
        assert model.lora_hash == item.job.lora_hash
        other = tmp_path / "other-lora.safetensors"
        other.write_bytes(lora_file.read_bytes()[:-8] + b"\0" * 8)
        with pytest.raises(ModelError, match="not the LoRA that made this picture"):
            retouch_model(database, original, lora_option=str(other))
    finally:
        database.close()
    # A LoRA whose weights are not numbers redraws black: no variant is made
    broken = tmp_path / "diverged.safetensors"
    save_file({name: torch.full_like(value, float("nan")) for name, value in load_file(str(lora_file)).items()}, broken)
    diverged = dataclasses.replace(model, lora=LoraWeights(path=str(broken), scale=0.7))
    settings = RetouchSettings(prompt="a boat", mode="img2img", variants=2, steps=2)
    with pytest.raises(ModelError, match=r"drew 2 of 2 pictures with values that are not numbers"):
        retouch(renderer.host, diverged, read_picture(original.path), None, settings, torch.float32)


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_an_sdxl_picture_is_retouched_with_its_own_pipeline(
    make_campaign: Callable[..., Path], tmp_path: Path, renderer: Renderer
) -> None:
    from visuels.inputs.images import read_picture
    from visuels.review.derivatives import find_original
    from visuels.review.retouch import RetouchSettings, retouch, retouch_model

    from tests.test_model import save_tiny_sdxl

    folder = save_tiny_sdxl(tmp_path / "sdxl")
    out = tmp_path / "outputs"
    one = {"file": "charter/communes.csv", "names": ["Sète"]}
    campaign = make_campaign(
        steps=2, formats=["instagram_square"], communes=one, model={"kind": "diffusers", "path": str(folder)}
    )
    [item] = render_now(renderer, plan_render(campaign, out), out)
    database = Database(f"sqlite:///{out / 'visuels.sqlite'}")
    try:
        original = find_original(database, out / item.job.relative_path, out)
        model = retouch_model(database, original)
    finally:
        database.close()
    picture = read_picture(original.path)
    mask = np.zeros((picture.height, picture.width), dtype=bool)
    mask[100:300, 100:300] = True
    for mode in ("inpaint", "img2img"):
        settings = RetouchSettings(prompt="a boat", mode=mode, variants=1, strength=0.9)
        [variant] = retouch(renderer.host, model, picture, mask, settings, torch.float32)
        changed = np.abs(np.asarray(variant, dtype=np.int16) - np.asarray(picture, dtype=np.int16)).max(axis=2) > 0
        assert not changed[~mask].any() and changed[mask].mean() > 0.5, mode


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_several_edits_at_once_and_a_crash_before_the_record_or_while_writing(
    exported: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import subprocess
    import sys

    from visuels._internal.liveness import machine_id
    from visuels.record import ledger

    original, out, charter = exported
    edits = []
    for number, colour in enumerate([(200, 30, 30), (30, 30, 200)]):
        edited = Image.open(original).convert("RGB")
        ImageDraw.Draw(edited).rectangle((300, 200, 500, 400), fill=colour)
        edits.append(tmp_path / f"edit-{number}.png")
        edited.save(edits[-1])

    # Killed after the file is written, before its record is committed: a re-run marks and records it once.
    def killed(*_args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(ledger, "append", killed)
    marked = str(tmp_path / "marked")
    assert _cli(out, charter, "finalize", str(edits[0]), "--from", str(original), "-o", marked) == 130
    assert (tmp_path / "marked" / "edit-0.png").is_file()  # written, not recorded
    monkeypatch.undo()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    half = tmp_path / "marked" / f".edit-1.png.{machine_id()}.{dead.stdout.strip()}.0123abcd.tmp"
    half.write_bytes(b"half a picture")  # killed while writing the other: hidden, and no render sweeps here
    rows = len(ledger_rows(out))
    assert _cli(out, charter, "finalize", *map(str, edits), "--from", str(original), "-o", marked) == 0
    assert sorted(path.name for path in (tmp_path / "marked").iterdir()) == ["edit-0.png", "edit-1.png"]
    assert len(ledger_rows(out)) == rows + 2
    assert "already marked" not in capsys.readouterr().out


def test_one_edit_finalized_by_two_processes_at_once_is_one_file_and_one_record(
    exported: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two finalizes of one edit at once (a form sent twice, two designers) both found it not done,
    both wrote and recorded it: two ledger rows for one file, the first's bytes gone from disk."""
    import threading

    from visuels.marking.keys import signing_files
    from visuels.review import derivatives

    original, out, _ = exported
    edited = Image.open(original).convert("RGB")
    ImageDraw.Draw(edited).rectangle((300, 200, 500, 400), fill=(200, 30, 30))
    edited.save(tmp_path / "poster.png")
    both_marking = threading.Barrier(2, timeout=60)
    marked = derivatives.write_marked

    def in_step(*args: object, **kwargs: object) -> object:
        both_marking.wait()  # each has looked for the edit already: neither found it
        return marked(*args, **kwargs)

    monkeypatch.setattr(derivatives, "write_marked", in_step)
    results: list[object] = []

    def finalize() -> None:
        database = Database(f"sqlite:///{out / 'visuels.sqlite'}")
        try:
            target = tmp_path / "final" / "poster.png"
            results.append(
                derivatives.finalize_file(tmp_path / "poster.png", original, target, None, database, signing_files())
            )
        except Exception as exc:
            results.append(exc)
        finally:
            database.close()

    threads = [threading.Thread(target=finalize) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(isinstance(result, derivatives.Derivative) for result in results), results
    assert sorted(result.already_done for result in results) == [False, True]
    assert [path.name for path in (tmp_path / "final").iterdir()] == ["poster.png"]
    [row] = [row for row in ledger_rows(out) if row["parent_id"] is not None]
    assert row["sha256"] == hashlib.sha256((tmp_path / "final" / "poster.png").read_bytes()).hexdigest()
    assert {result.ledger_id for result in results} == {row["id"]}


def test_tiff_and_psd_exports_finalized_into_a_folder_come_out_as_png(
    exported: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Print work exports TIFF (and Photoshop saves PSD): `finalize *.tiff -o marked/` stopped on
    "unsupported file type '.tiff'" with no way to name another type for a folder."""
    from psd_tools import PSDImage

    original, out, charter = exported
    edited = Image.open(original).convert("RGB")
    ImageDraw.Draw(edited).rectangle((300, 200, 500, 400), fill=(30, 90, 160))
    edited.save(tmp_path / "print.tiff", compression="tiff_lzw")
    PSDImage.frompil(edited).save(str(tmp_path / "poster.psd"))
    edits = [tmp_path / "print.tiff", tmp_path / "poster.psd"]
    marked = tmp_path / "marked"
    assert _cli(out, charter, "finalize", *map(str, edits), "--from", str(original), "-o", str(marked)) == 0
    assert sorted(path.name for path in marked.iterdir()) == ["poster.png", "print.png"]
    assert _cli(out, charter, "verify", str(marked)) == 0


def test_a_second_edit_of_the_same_file_never_replaces_the_first_finalized_one(
    exported: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """poster.png edited, finalized, edited again and finalized again: the second run wrote over
    poster-final.png, a marked file its record names and a region may have published (lost from
    disk, its row left pointing at other bytes). It goes beside it now, as poster-final-2.png."""
    original, out, charter = exported
    edited_path = tmp_path / "poster.png"
    finals = []
    for colour in [(200, 30, 30), (30, 30, 200)]:
        edited = Image.open(original).convert("RGB")
        ImageDraw.Draw(edited).rectangle((300, 200, 500, 400), fill=colour)
        edited.save(edited_path)
        assert _cli(out, charter, "finalize", str(edited_path), "--from", str(original)) == 0
        finals.append(capsys.readouterr().out.split(" -> ")[1].split(":")[0])
    assert finals == [str(tmp_path / "poster-final.png"), str(tmp_path / "poster-final-2.png")]
    assert _cli(out, charter, "verify", *finals) == 0  # each file the bytes its record names


def test_an_edit_is_checked_against_the_charter_its_original_was_made_with(
    make_campaign: Callable[..., Path],
    charter_dir: Path,
    renderer: Renderer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without --charter, finalize checked every edit against the sample charter: a region's own
    pictures were all "checked against another charter than the one the original was made with"."""
    from tests.helpers import edit_yaml

    edit_yaml(charter_dir / "charter.yaml", lambda charter: charter.update(name="Région Autre"))
    out = tmp_path / "outputs"
    one = {"file": "charter/communes.csv", "names": ["Sète"]}
    plan = plan_render(make_campaign(steps=2, formats=["instagram_square"], communes=one), out)
    [item] = render_now(renderer, plan, out)
    original = out / item.job.relative_path
    database = ["--database", str(out / "visuels.sqlite")]
    for number, charter_there in enumerate((True, False)):
        if not charter_there:  # moved since: the deployment's charter (here the sample's) is what is left
            charter_dir.rename(tmp_path / "moved")
        edited = Image.open(original).convert("RGB")
        ImageDraw.Draw(edited).rectangle((400, 300, 500 + 50 * number, 400), fill=(40, 90, 160))
        edited.save(tmp_path / f"edited-{number}.png")
        main(["finalize", str(tmp_path / f"edited-{number}.png"), "--from", str(original), *database])
        printed = capsys.readouterr().out
        assert ("another charter than the one the original was made with" in printed) is not charter_there, printed
