"""The command line: one-line errors with exit code 2, nothing written on bad input."""

import os
import pty
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import pytest
import torch
from PIL import Image
from visuels.cli import main
from visuels.errors import VisuelsError
from visuels.planning.request import RenderRequest
from visuels.review.publish import RenderSummary

from tests.helpers import SAMPLE_CAMPAIGN, SAMPLE_CHARTER_DIR, edit_yaml


def refuse_to_render(request: RenderRequest) -> RenderSummary:
    raise AssertionError("bad input must be refused before the flow starts")


def test_check_accepts_the_samples(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(SAMPLE_CAMPAIGN), str(SAMPLE_CHARTER_DIR / "charter.yaml"), str(SAMPLE_CHARTER_DIR / "communes.csv")]
    assert main(["check", *files]) == 0
    out = capsys.readouterr().out
    assert out.count("ok  ") == 3 and "984 images" in out and "2 communes rendered from their photos" in out


def test_check_of_a_campaigns_folder_checks_each_campaign_the_nightly_would_render(
    make_campaign: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`visuels check campaigns/` read the folder as a charter's ("campaigns/charter.yaml: file not
    found"): it checks each campaign in it now, a charter's folder stays a charter."""
    folder = tmp_path / "campaigns"
    folder.mkdir()
    inside = {"charter": "../charter/charter.yaml", "communes": {"file": "../charter/communes.csv", "names": ["Sète"]}}
    make_campaign("campaigns/ete.yaml", **inside)
    make_campaign("campaigns/hiver.yml", **inside, steps=0)
    (folder / "._ete.yaml").write_bytes(b"\x00\x05\x16\x07")  # what a Mac leaves beside it
    assert main(["check", str(folder)]) == 2
    said = capsys.readouterr()
    assert said.out.startswith(f"ok  {folder / 'ete.yaml'}: campaign")
    assert said.err.strip() == f"error: {folder / 'hiver.yml'}: steps: Input should be greater than or equal to 1"
    assert main(["check", str(tmp_path / "charter")]) == 0 and "charter 'Région Solane'" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["check", str(tmp_path / "empty")]) == 2
    assert (
        capsys.readouterr().err.strip().endswith("empty: a folder with no charter.yaml and no campaign (.yaml) in it")
    )


def test_check_says_what_training_would_refuse_in_a_charters_references(
    charter_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`visuels check charter.yaml` said ok to references `visuels train` then stopped on (a
    picture without its caption): a finding now, as rendering does not need them; every one of
    them, so that they are mended at once."""
    (charter_dir / "references" / "03-hills.txt").unlink()
    (charter_dir / "references" / "05-small.txt").write_text("a small picture", encoding="utf-8")
    Image.new("RGB", (120, 90)).save(charter_dir / "references" / "05-small.png")
    assert main(["check", str(charter_dir / "charter.yaml")]) == 1
    found = [line.strip() for line in capsys.readouterr().out.splitlines() if "references: " in line]
    assert found == [
        f"references: {charter_dir / 'references' / '03-hills.png'}: caption: missing caption file 03-hills.txt"
        " (`visuels train` would stop there)",
        f"references: {charter_dir / 'references' / '05-small.png'}: size: 120x90 is smaller than 256 px"
        " (`visuels train` would stop there)",
    ]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"formats": ["instagram_square", "billboard"]}, "formats"),
        ({"communes": {"file": "charter/communes.csv", "names": ["Atlantis"]}}, "communes.names[0]"),
    ],
)
@pytest.mark.parametrize("command", ["check", "render"])
def test_bad_campaign_one_line_exit_2_nothing_written(
    make_campaign: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    fields: dict,
    field: str,
) -> None:
    campaign = make_campaign(**fields)
    out_dir = tmp_path / "outputs"
    argv = [command, str(campaign)] + (["--output-dir", str(out_dir)] if command == "render" else [])
    assert main(argv, render=refuse_to_render) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith(f"error: {campaign}: {field}: ")
    assert not out_dir.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(mood="sunny"), "mood"),
        (lambda d: d["palette"][0].update(hex="#XYZXYZ"), "palette[0].hex"),
        (lambda d: d["logo"].update(dark="logos/nope.png"), "logo.dark"),
    ],
)
def test_bad_charter_through_render_names_the_charter(
    make_campaign: Callable[..., Path],
    charter_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: Callable[[dict], None],
    field: str,
) -> None:
    edit_yaml(charter_dir / "charter.yaml", change)
    out_dir = tmp_path / "outputs"
    assert main(["render", str(make_campaign()), "--output-dir", str(out_dir)], render=refuse_to_render) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith(f"error: {charter_dir / 'charter.yaml'}: {field}: ")
    assert not out_dir.exists()


def test_logo_too_large_for_a_format_is_refused(
    make_campaign: Callable[..., Path], charter_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_yaml(charter_dir / "charter.yaml", lambda d: d["logo"].update(min_width_share=0.45, clear_zone=1.5))
    campaign = make_campaign(formats=["web_banner"])
    assert main(["check", str(campaign)]) == 2
    err = capsys.readouterr().err.strip()  # the charter's templates first: their logo slots are too small now
    assert err.startswith(f"error: {charter_dir / 'charter.yaml'}: templates.bande.")
    assert "the logo drawn in it is 250 px wide, the charter's smallest is 486 px (45% of" in err
    edit_yaml(charter_dir / "charter.yaml", lambda d: d.pop("templates"))  # the built-in layout alone
    assert main(["check", str(campaign)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {charter_dir / 'charter.yaml'}: logo.min_width_share: ")
    assert "more than a quarter of web_banner (1920x1080)" in err


def test_unknown_commune_override_is_refused(
    make_campaign: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "outputs"
    argv = ["render", str(make_campaign()), "--communes", "Sète,Atlantis", "--output-dir", str(out_dir)]
    assert main(argv, render=refuse_to_render) == 2
    assert "unknown commune 'Atlantis'" in capsys.readouterr().err
    assert not out_dir.exists()
    # Paris is a commune of France, not of this campaign's communes file: said so, not "unknown".
    argv = ["render", str(make_campaign()), "--communes", "Sète,Paris", "--output-dir", str(out_dir)]
    assert main(argv, render=refuse_to_render) == 2
    assert "--communes: Paris (75056, department 75) is not among the communes this campaign" in capsys.readouterr().err
    # Foix is in the communes file, not among the campaign's communes: said so, not "unknown".
    argv = ["render", str(make_campaign()), "--communes", "Foix", "--output-dir", str(out_dir)]
    assert main(argv, render=refuse_to_render) == 2
    err = capsys.readouterr().err
    assert "Foix (09122, department 09) is in the communes file, but not among the communes this campaign" in err
    assert "unknown commune" not in err


def test_a_command_without_its_action_says_which_there_are(capsys: pytest.CaptureFixture[str]) -> None:
    for command, words in (("keys", "init: create"), ("ledger", "verify: check the hash chain")):
        with pytest.raises(SystemExit) as exited:
            main([command])
        assert exited.value.code == 2
        error = capsys.readouterr().err
        assert f"visuels {command}: error: say what to do: {words}" in error and "required" not in error


def test_a_setting_that_is_not_valid_stops_every_entry_point_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A VISUELS_* variable out of its range, or the language setting itself, before anything runs:
    `make serve`'s entry point too. Said in the language setting's language, else the locale's."""
    from visuels.flows.processes import free_port
    from visuels.flows.serve import main as serve

    monkeypatch.setenv("VISUELS_CLAIM_LEASE_S", "5")
    monkeypatch.setenv("VISUELS_LANGUAGE", "fr")
    assert main(["doctor"]) == 2
    assert capsys.readouterr().err == "erreur : VISUELS_CLAIM_LEASE_S: la valeur doit être supérieure ou égale à 10\n"
    monkeypatch.setenv("VISUELS_LANGUAGE", "en")
    assert serve(["--port", str(free_port())]) == 2  # nothing started
    assert capsys.readouterr().err == "error: VISUELS_CLAIM_LEASE_S: Input should be greater than or equal to 10\n"
    monkeypatch.delenv("VISUELS_CLAIM_LEASE_S")
    monkeypatch.setenv("VISUELS_LANGUAGE", "de")
    monkeypatch.setenv("LANGUAGE", "fr_FR")
    assert main(["doctor"]) == 2
    assert capsys.readouterr().err.startswith("erreur : VISUELS_LANGUAGE: la valeur doit être")


@pytest.mark.integration
def test_console_script_prints_no_traceback(make_campaign: Callable[..., Path], tmp_path: Path) -> None:
    campaign = make_campaign(steps=500)
    script = Path(sys.executable).parent / "visuels"
    result = subprocess.run(
        [str(script), "render", str(campaign), "--output-dir", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: {campaign}: steps: Input should be less than or equal to 150"
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has the GPU asked for")
def test_a_device_this_machine_lacks_is_one_line_before_anything_is_planned(
    make_campaign: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert (
        main(["render", str(make_campaign()), "--device", "cuda", "--output-dir", str(out)], render=refuse_to_render)
        == 3
    )
    assert capsys.readouterr().err.startswith("error: --device cuda: no CUDA GPU on this machine (")
    assert not out.exists()


def test_an_output_folder_that_is_a_file_is_one_line(
    make_campaign: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "outputs"
    taken.write_text("a file, not a folder")
    assert main(["render", str(make_campaign()), "--output-dir", str(taken)], render=refuse_to_render) == 2
    assert capsys.readouterr().err.strip() == f"error: {taken}: is a file: the output folder must be a folder"
    assert taken.read_text() == "a file, not a folder"


def test_a_temporary_server_that_does_not_start_is_one_line_and_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    import visuels.flows.cli
    import visuels.flows.prefect_server
    from visuels.errors import EXIT_ENVIRONMENT

    started = []

    def never_healthy(api_url: str, server: subprocess.Popen, timeout: float) -> None:
        started.append(server)
        raise RuntimeError(f"the Prefect server did not answer on {api_url} within {timeout:.0f} s")

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setattr(visuels.flows.prefect_server, "wait_until_healthy", never_healthy)
    with pytest.raises(VisuelsError, match="temporary server did not start") as raised:
        visuels.flows.cli.run_render_flow(RenderRequest(campaign="campaigns/ete-2027.yaml"))
    assert raised.value.exit_code == EXIT_ENVIRONMENT  # the machine, not the input
    assert started and started[0].poll() is not None  # and the server it started is gone


def test_a_prefect_server_that_is_not_there_is_one_line_naming_the_setting() -> None:
    """PREFECT_API_URL set, and no Prefect behind it: not an address (bad input), nothing listening
    or another server answering (the environment), each said of the setting, not in a traceback."""
    import http.server

    import visuels.flows.cli
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from visuels.errors import EXIT_BAD_INPUT, EXIT_ENVIRONMENT
    from visuels.flows.processes import free_port

    from tests.tsa import serving

    nothing_there = f"http://127.0.0.1:{free_port()}/api"
    with serving(http.server.SimpleHTTPRequestHandler) as other:
        cases = (
            ("127.0.0.1:4200/api", EXIT_BAD_INPUT, "not a Prefect server's address: write it http://HOST:PORT/api"),
            (nothing_there, EXIT_ENVIRONMENT, f"no Prefect server answers at {nothing_there} ("),
            (f"{other}api", EXIT_ENVIRONMENT, "(it answered HTTP 404): start it"),
        )
        for url, code, words in cases:
            with temporary_settings(updates={PREFECT_API_URL: url}), pytest.raises(VisuelsError) as raised:
                visuels.flows.cli.run_render_flow(RenderRequest(campaign="campaigns/ete-2027.yaml"))
            assert raised.value.exit_code == code and words in str(raised.value)
            assert str(raised.value).startswith("PREFECT_API_URL: ")


def test_doctor_names_what_is_missing(tmp_path, monkeypatch, capsys) -> None:
    from visuels.cli import main as cli

    monkeypatch.setenv("VISUELS_KEYS_DIR", str(tmp_path / "no-keys"))
    assert cli(["doctor", "--output-dir", str(tmp_path)]) == 1
    printed = capsys.readouterr().out
    assert "CUDA" in printed and "torch" in printed
    assert "signing keys" in printed and "visuels keys init" in printed
    assert cli(["doctor", str(SAMPLE_CAMPAIGN), "--output-dir", str(tmp_path)]) == 1
    assert "campaign model: demo model (random weights)" in capsys.readouterr().out
    monkeypatch.setenv("VISUELS_CACHE_DIR", "/proc/visuels-cache")  # the demo model cannot be built there
    assert cli(["doctor", "--output-dir", str(tmp_path)]) == 1
    assert "model: the demo model cannot be built in /proc: cannot make a folder here" in capsys.readouterr().out


def test_doctor_says_when_the_sqlite_record_is_on_a_network_file_system(tmp_path, monkeypatch, capsys) -> None:
    """Two machines rendering into one folder on a NAS, without PostgreSQL, share a SQLite file whose
    locks do not hold between them: the docs said so; `visuels doctor` says it of the folder."""
    from visuels.cli import doctor
    from visuels.cli import main as cli

    share = tmp_path / "share"
    (share / "outputs").mkdir(parents=True)
    mounts = f"1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 0:52 / {share} rw,relatime shared:7 - nfs4 nas:/visuels rw\n"
    assert doctor.network_filesystem(share / "outputs" / "not-made-yet", mounts) == "nfs4"
    assert doctor.network_filesystem(tmp_path / "local", mounts) is None
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(mounts, encoding="utf-8")
    monkeypatch.setattr(doctor, "MOUNTS", mountinfo)
    monkeypatch.setenv("VISUELS_KEYS_DIR", str(tmp_path / "no-keys"))
    cli(["doctor", "--output-dir", str(share / "outputs")])
    said = next(line for line in capsys.readouterr().out.splitlines() if "database" in line)
    assert said.startswith("note") and "on a network file system (nfs4)" in said and "VISUELS_DATABASE_URL" in said
    monkeypatch.setenv("VISUELS_DATABASE_URL", "postgresql+psycopg://render@db.region.fr/visuels")
    cli(["doctor", "--output-dir", str(share / "outputs")])
    said = next(line for line in capsys.readouterr().out.splitlines() if "database" in line)
    assert said.startswith("ok") and "network" not in said


def test_doctor_says_note_for_what_works_but_matters_and_counts_a_training_run_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from visuels.cli import main as cli
    from visuels.marking.keys import init_local_chain

    init_local_chain(tmp_path / "keys")
    monkeypatch.setenv("VISUELS_KEYS_DIR", str(tmp_path / "keys"))
    run = tmp_path / "lora" / "solane" / "20261203-0100"
    run.mkdir(parents=True)
    (run / "pytorch_lora_weights.safetensors").write_bytes(b"")  # and its kohya copy beside it:
    (run / "lora_kohya.safetensors").write_bytes(b"")
    # A run killed after its files were written, before its folder was renamed: no LoRA yet.
    interrupted = tmp_path / "lora" / "solane" / ".20261204-0100.partial"
    interrupted.mkdir()
    (interrupted / "pytorch_lora_weights.safetensors").write_bytes(b"")
    monkeypatch.setenv("VISUELS_LORA_DIR", str(tmp_path / "lora"))
    assert cli(["doctor", "--output-dir", str(tmp_path)]) == 0  # nothing missing
    lines = capsys.readouterr().out.splitlines()
    keys = next(line for line in lines if "signing keys:" in line)
    assert keys.startswith("note") and "development keys" in keys
    if not torch.cuda.is_available():
        assert next(line for line in lines if "CUDA:" in line).startswith("note")
    assert "1 trained LoRA under" in next(line for line in lines if "LoRA:" in line)
    training = next(line for line in lines if "training:" in line)
    assert training.startswith("note") and "did not end: 1, newest 20261204-0100; `visuels train" in training


def test_command_line_mistakes_are_explained(
    make_campaign: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    campaign = str(make_campaign())
    for argv, words in (
        (["render", campaign, "--max-communes", "abc"], "--max-communes: 'abc' is not a whole number"),
        (["render", campaign, "--foo"], "visuels render: error: unrecognized arguments: --foo"),
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv, render=refuse_to_render)
        assert exited.value.code == 2
        error = capsys.readouterr().err
        assert words in error and "invalid _positive value" not in error
        assert error.startswith("usage: visuels render")  # the command's usage, not the top level's
    assert main(["render", campaign, "--model", str(tmp_path / "nonexistent")], render=refuse_to_render) == 2
    assert capsys.readouterr().err.strip() == f"error: --model: {tmp_path / 'nonexistent'} not found"  # not the file's
    for command in ("check", "verify", "render"):
        with pytest.raises(SystemExit):
            main([command, "-h"])
        assert capsys.readouterr().out.split("\n\n")[1].strip()[0].isupper()  # a description under the usage
    with pytest.raises(SystemExit):
        main(["train", "-h"])
    assert "optimiser steps, 1-100,000" in capsys.readouterr().out


def test_version_is_the_installed_package_s(capsys: pytest.CaptureFixture[str]) -> None:
    """What a bug report needs: the version pip installed, the one the package says it is."""
    import visuels

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"visuels {version('visuels')}" == f"visuels {visuels.__version__}"


def test_a_first_serve_or_demo_makes_local_keys_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from visuels.flows.serve import serving_environment
    from visuels.marking.keys import SIGNER_KEY, ensure_local_chain

    folder = tmp_path / "keys"
    assert ensure_local_chain(folder) and (folder / SIGNER_KEY).is_file()
    before = (folder / SIGNER_KEY).read_bytes()
    assert not ensure_local_chain(folder) and (folder / SIGNER_KEY).read_bytes() == before  # never overwritten
    monkeypatch.delenv("VISUELS_KEYS_DIR")
    monkeypatch.chdir(tmp_path)
    assert serving_environment("http://127.0.0.1:1/api")["VISUELS_KEYS_DIR"] == str(folder)


def test_a_render_says_first_which_outputs_were_saved_over(
    make_campaign: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outputs edited in place are made again, their edits kept beside them: said before the
    render starts (a run's own log, in the Prefect UI, names each)."""
    from visuels.planning.plan import plan_render

    campaign, out_dir = make_campaign(), tmp_path / "outputs"
    for job in plan_render(campaign, out_dir).jobs[:2]:
        (out_dir / job.relative_path).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (job.width, job.height), (200, 40, 40)).save(out_dir / job.relative_path)

    def stop_at_the_flow(request: RenderRequest) -> RenderSummary:
        raise KeyboardInterrupt  # what was said before the render is all this test reads

    assert main(["render", str(campaign), "--output-dir", str(out_dir)], render=stop_at_the_flow) == 130
    assert (
        "2 outputs were changed since they were rendered (saved over): each is kept beside it as NAME-edited.png"
        " and made again; `visuels finalize` the edits to publish them" in capsys.readouterr().out
    )


def _expired_signer(folder: Path) -> None:
    """Give ``folder``'s signer a certificate that expired yesterday."""
    import datetime

    from tests.helpers import reissue_signer

    now = datetime.datetime.now(datetime.UTC)
    reissue_signer(folder, now - datetime.timedelta(days=400), now - datetime.timedelta(days=1))


@pytest.mark.parametrize(
    ("damage", "file", "said"),
    [
        (lambda k, other: (k / "signer.key").write_text("garbage\n"), "signer.key", "not a private key in PEM form"),
        (
            lambda k, other: (k / "signer.key").write_bytes((other / "signer.key").read_bytes()),
            "chain.pem",
            "its first certificate is not signer.key's",
        ),
        (
            lambda k, other: (k / "signer.key").write_bytes(_encrypted(k / "signer.key")),
            "signer.key",
            "the key is protected by a password",
        ),
        (lambda k, other: (k / "chain.pem").write_text(""), "chain.pem", "holds no certificate in PEM form"),
        (lambda k, other: (k / "trust-anchors.pem").write_text("x"), "trust-anchors.pem", "holds no certificate"),
        (lambda k, other: _expired_signer(k), "chain.pem", "the signer's certificate expired on "),
        (lambda k, other: (k / "chain.pem").unlink(), "chain.pem", "signing file not found beside signer.key"),
    ],
    ids=["garbage-key", "another-chains-key", "encrypted-key", "empty-chain", "no-anchor", "expired", "no-chain"],
)
def test_keys_that_cannot_sign_are_refused_before_anything_is_rendered(
    damage: Callable[[Path, Path], object],
    file: str,
    said: str,
    make_campaign: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A damaged signer key, another chain's key, an expired certificate: a render generated its
    first batch, then stopped at the first signature, naming chain.pem whatever was wrong, and
    `doctor` said the keys were fine (or ended in a traceback on a damaged chain)."""
    from visuels.marking.keys import init_local_chain

    keys, other = tmp_path / "keys", tmp_path / "other"
    init_local_chain(keys)
    init_local_chain(other)
    damage(keys, other)
    monkeypatch.setenv("VISUELS_KEYS_DIR", str(keys))
    out_dir = tmp_path / "outputs"
    assert main(["render", str(make_campaign()), "--output-dir", str(out_dir)], render=refuse_to_render) == 2
    assert capsys.readouterr().err.startswith(f"error: {keys / file}: {said}")
    assert not out_dir.exists()
    assert main(["doctor", "--output-dir", str(tmp_path)]) == 1
    line = next(line for line in capsys.readouterr().out.splitlines() if "signing keys:" in line)
    assert line.startswith("missing" if file == "chain.pem" and not (keys / file).exists() else "refused")
    assert f"{keys / file}: {said}" in line
    if not (keys / file).exists():  # `keys init`, as doctor used to advise, never replaces the key
        assert main(["keys", "init"]) == 2
        assert "move this folder aside" in capsys.readouterr().err


def _encrypted(key_file: Path) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from visuels.marking.keys import read_private_key

    return read_private_key(key_file).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )


def test_prefect_prints_no_telemetry_notice_in_a_terminal(tmp_path: Path) -> None:
    """Prefect shows new users a telemetry notice in interactive terminals, in the middle of the
    first progress bar, and would send usage events: the command line turns both off first."""
    environment = {name: value for name, value in os.environ.items() if name not in {"DO_NOT_TRACK", "CI"}} | {
        "PREFECT_HOME": str(tmp_path / "prefect")
    }
    code = "from visuels.flows.cli import offline_defaults; offline_defaults(); import prefect; print('imported')"
    shown = _in_a_terminal([sys.executable, "-c", code], environment)
    assert "imported" in shown and "telemetry" not in shown.lower(), shown


def _in_a_terminal(command: list[str], environment: dict[str, str]) -> str:
    """What ``command`` prints when its output is a terminal."""
    main_end, child_end = pty.openpty()
    process = subprocess.Popen(command, stdout=child_end, stderr=child_end, env=environment)
    os.close(child_end)
    chunks = []
    while True:
        try:
            chunk = os.read(main_end, 4096)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(main_end)
    return b"".join(chunks).decode("utf-8", "replace")


def test_the_deployments_charter_is_what_commands_check_against_without_charter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A region with its own charter sets it once (VISUELS_CHARTER): seven commands defaulted to
    the sample's, whose label and palette its pictures are not made with."""
    from visuels.cli import main as cli
    from visuels.cli.main import build_parser

    mine = tmp_path / "region-charter"
    monkeypatch.setenv("VISUELS_CHARTER", str(mine))
    _, commands = build_parser()
    defaults = {
        name: action.default
        for name, command in commands.items()
        for action in command._actions
        if "--charter" in action.option_strings
    }
    assert set(defaults) >= {"detect", "verify", "finalize", "layers", "retouch", "studio"}
    # Those that change an output check it against the charter it was made with (test_derivatives).
    assert {name: default for name, default in defaults.items() if default != mine} == dict.fromkeys(
        ("finalize", "layers", "retouch", "studio")
    )
    assert cli(["verify", str(tmp_path / "picture.png")]) == 2  # its charter is read first, and is not there
    assert f"error: {mine}: file not found" in capsys.readouterr().err
    monkeypatch.setenv("VISUELS_KEYS_DIR", str(tmp_path / "no-keys"))
    cli(["doctor", "--output-dir", str(tmp_path)])
    assert f"charter: {mine}: file not found (VISUELS_CHARTER)" in capsys.readouterr().out
    monkeypatch.delenv("VISUELS_CHARTER")
    cli(["doctor", "--output-dir", str(tmp_path)])
    said = capsys.readouterr().out
    assert "note    charter: the sample charter (Région Solane)" in said and "VISUELS_CHARTER" in said
