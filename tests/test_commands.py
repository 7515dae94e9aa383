"""Every ``visuels`` command through the installed console script, as a user runs it: the main path
on the demo model, and one bad input (one line, exit code 2, no traceback). So a command that is
broken at its entry point (a parameter the flow refuses, an import that fails) cannot reach main.

The commands share one project folder (keys, Prefect's home, outputs), in the order a user meets
them: keys, check, render, verify, finalize, retouch, ledger, train, doctor, studio, demo. The first
render starts its own temporary Prefect server, as a user's first command does; the later flow
commands (train, demo) use one server set in ``PREFECT_API_URL``, as a served user's do.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from visuels.flows.prefect_server import temporary_server
from visuels.flows.processes import free_port

from tests.helpers import SAMPLE_CHARTER_DIR

pytestmark = pytest.mark.integration

SCRIPT = Path(sys.executable).parent / "visuels"


class Project:
    """A user's folder: where ``visuels`` runs, with its own keys and Prefect home."""

    def __init__(self, folder: Path, api_url: str) -> None:
        self.folder = folder
        self.api_url = api_url  # the module's Prefect server, for the commands run ``served``
        self.environment = os.environ | {
            "VISUELS_KEYS_DIR": str(folder / "keys"),
            "PREFECT_HOME": str(folder / "prefect"),
            "VISUELS_LORA_DIR": str(folder / "lora"),
        }
        self.environment.pop("PREFECT_API_URL", None)
        self.environment.pop("VISUELS_DATABASE_URL", None)

    def run(self, *arguments: str, timeout: float = 300, served: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *arguments],
            cwd=self.folder,
            env=self.environment | ({"PREFECT_API_URL": self.api_url} if served else {}),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def refuses(self, *arguments: str, words: str) -> None:
        """Bad input: one line on stderr saying ``words``, exit code 2, no traceback."""
        result = self.run(*arguments)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr + result.stdout
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:") or ": error:" in line]
        assert len(lines) == 1 and words in lines[0], result.stderr


@pytest.fixture(scope="module")
def prefect_api() -> Iterator[str]:
    """A Prefect server for the module's later flow commands (the first render starts its own)."""
    with temporary_server(free_port()) as api_url:
        yield api_url


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Project:
    folder = tmp_path_factory.mktemp("project")
    (folder / "campaign.yaml").write_text(
        f"""
name: Commandes
charter: {SAMPLE_CHARTER_DIR / "charter.yaml"}
communes: {{file: {SAMPLE_CHARTER_DIR / "communes.csv"}, names: ["Sète"]}}
model: {{kind: demo}}
prompt: "poster of {{commune}}, {{landscape}}, for {{audience}}"
season: summer
audiences: {{residents: families}}
formats: [instagram_square, story]
steps: 2
photos: null
""",
        encoding="utf-8",
    )
    return Project(folder, prefect_api)


@pytest.fixture(scope="module")
def rendered(project: Project) -> list[Path]:
    """keys init, then a render of two pictures: what the other commands work on. It shows a
    progress bar, and none of Prefect's log lines or notices."""
    made = project.run("keys", "init")
    assert made.returncode == 0 and "keys mode 0600" in made.stdout, made.stderr
    result = project.run("render", "campaign.yaml", "--cpu-workers", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rendered" in result.stdout
    shown = result.stdout + result.stderr
    assert "rendering" in shown and "2/2 images" in shown and "done in" in shown
    for chatter in ("docs.prefect.io", "temporary server", "Task run", "Flow run", "| INFO"):
        assert chatter not in shown
    files = sorted(
        path for path in (project.folder / "outputs" / "commandes").rglob("*.png") if "thumbnails" not in path.parts
    )
    assert len(files) == 2
    return files


def test_keys(project: Project, rendered: list[Path]) -> None:
    project.refuses("keys", "init", words="exists")  # never overwrites a key


def test_check(project: Project) -> None:
    result = project.run("check", "campaign.yaml", str(SAMPLE_CHARTER_DIR))
    assert result.returncode == 0, result.stderr
    assert "campaign 'Commandes': 1 commune x " in result.stdout and "charter 'Région Solane'" in result.stdout
    (project.folder / "broken.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    project.refuses("check", "broken.yaml", words="invalid YAML")


def test_render(project: Project, rendered: list[Path]) -> None:
    again = project.run("render", "campaign.yaml")
    assert again.returncode == 0 and "nothing to render" in again.stdout
    assert "rendering" not in again.stdout  # no run, no server
    # Up to date, it still says where the pictures and their report are.
    assert "images in" in again.stdout and "compliance report:" in again.stdout
    (project.folder / "steps.yaml").write_text(
        (project.folder / "campaign.yaml").read_text(encoding="utf-8").replace("steps: 2", "steps: 500"),
        encoding="utf-8",
    )
    project.refuses("render", "steps.yaml", words="steps: Input should be less than or equal to 150")


def test_a_plain_run_after_a_trial_publishes_the_campaign_again(project: Project, rendered: list[Path]) -> None:
    """A trial on other settings (float32 here; another model likewise) makes its own pictures the
    current ones; the campaign's next plain run renders nothing, yet puts manifest.json and the
    report back on the campaign's pictures. So does a run after one killed before its manifest."""
    shutil.copytree(project.folder / "outputs", project.folder / "trial")
    folder = project.folder / "trial" / "commandes"

    def current() -> set[str]:
        files = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["files"]
        return {entry["file"] for entry in files.values() if entry["current"]}

    def reported() -> set[str]:
        with (folder / "report.csv").open(encoding="utf-8") as report:
            return {row["file"] for row in csv.DictReader(report)}

    campaign = current()
    assert len(campaign) == 2 and reported() == campaign
    trial = project.run(
        "render", "campaign.yaml", "--output-dir", "trial", "--dtype", "float32", "--cpu-workers", "1", served=True
    )
    assert trial.returncode == 0 and "2 rendered" in trial.stdout, trial.stdout + trial.stderr
    assert len(current()) == 2 and not current() & campaign and reported() == current()
    again = project.run("render", "campaign.yaml", "--output-dir", "trial")
    assert again.returncode == 0 and "nothing to render" in again.stdout, again.stdout + again.stderr
    assert current() == campaign and reported() == campaign
    (folder / "manifest.json").unlink()  # killed after its last file
    assert "nothing to render" in project.run("render", "campaign.yaml", "--output-dir", "trial").stdout
    assert current() == campaign


def test_verify(project: Project, rendered: list[Path]) -> None:
    result = project.run("verify", *map(str, rendered))
    assert result.returncode == 0, result.stdout + result.stderr
    *verdicts, total = [line for line in result.stdout.splitlines() if line.strip()]
    assert all(line.startswith("ok ") for line in verdicts) and total == "2 files: 2 ok, 0 BAD"
    copy = project.folder / "copy.png"
    with Image.open(rendered[0]) as picture:
        picture.convert("RGB").save(copy)  # its metadata gone, its pixels (and watermark) kept
    result = project.run("verify", str(copy), str(rendered[1]))
    first = result.stdout.splitlines()[0]
    assert result.returncode == 1 and first.startswith("BAD ") and "copy.png: label yes" in first, result.stdout
    assert "what to do: an edited copy of one of its pictures: `visuels finalize " in result.stdout
    assert "copy.png` marks it again" in result.stdout
    assert result.stdout.rstrip().endswith("2 files: 1 ok, 1 BAD")
    (project.folder / "notes.png").write_text("not a picture")
    result = project.run("verify", "notes.png")
    assert result.returncode == 2 and result.stderr.startswith("error: notes.png: not a picture")


def test_finalize(project: Project, rendered: list[Path]) -> None:
    edited = project.folder / "edited.png"
    with Image.open(rendered[0]) as picture:
        picture.convert("RGB").save(edited)  # re-saved: its metadata gone, its pixels (and watermark) kept
    result = project.run("finalize", str(edited))
    assert result.returncode in (0, 1), result.stdout + result.stderr  # 1: a charter finding, reported
    assert "-> " in result.stdout and (project.folder / "edited-final.png").is_file()
    stranger = project.folder / "stranger.png"
    Image.new("RGB", (64, 64), (30, 90, 160)).save(stranger)
    project.refuses("finalize", str(stranger), words="stranger.png")


def test_layers(project: Project, rendered: list[Path]) -> None:
    # The sample campaign here is in the built-in layout: no layers to give (test_demo makes one
    # from a picture in the charter's templates).
    project.refuses("layers", str(rendered[0]), words="built-in layout")
    project.refuses("layers", str(project.folder / "missing.png"), words="missing.png")


def test_retouch(project: Project, rendered: list[Path]) -> None:
    arguments = ["retouch", str(rendered[0]), "--mode", "img2img", "--prompt", "a brighter sky", "--variants", "1"]
    result = project.run(*arguments, "--strength", "0.3", "-o", str(project.folder / "retouched"))
    assert result.returncode in (0, 1), result.stdout + result.stderr
    assert len(list((project.folder / "retouched").glob("*-retouch-0.png"))) == 1
    project.refuses(*arguments, "--strength", "5", words="--strength")


def test_ledger(project: Project, rendered: list[Path]) -> None:
    result = project.run("ledger", "verify", "--database", "outputs/visuels.sqlite")
    assert result.returncode == 0 and "hash chain intact" in result.stdout, result.stderr
    project.refuses("ledger", "verify", "--database", "nowhere.sqlite", words="database not found")


def test_train(project: Project) -> None:
    small = ["--steps", "2", "--resolution", "64", "--rank", "2", "--checkpoint-every", "2", "--sample-steps", "2"]
    result = project.run("train", str(SAMPLE_CHARTER_DIR), *small, "--lora-dir", "lora", served=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "done: 2 steps" in result.stdout and "LoRA in" in result.stdout
    assert "step 2 of 2, loss" in result.stdout + result.stderr  # the run's progress, in its log and here
    project.refuses("train", str(SAMPLE_CHARTER_DIR), "--steps", "0", words="--steps")


def test_doctor(project: Project, rendered: list[Path]) -> None:
    result = project.run("doctor", "campaign.yaml")
    assert result.returncode in (0, 1), result.stdout + result.stderr  # 1: something is missing, said
    assert "signing keys" in result.stdout and "campaign model: demo model" in result.stdout
    project.refuses("doctor", "nowhere.yaml", words="nowhere.yaml")


def test_studio(project: Project, rendered: list[Path]) -> None:
    port = free_port()
    studio = subprocess.Popen(
        [str(SCRIPT), "studio", "--port", str(port)],
        cwd=project.folder,
        env=project.environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        page = _get_when_up(f"http://127.0.0.1:{port}/", studio)
        assert "commandes" in page
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": "evil.example"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403
    finally:
        studio.terminate()
        studio.wait(timeout=30)
    project.refuses("studio", "--charter", "nowhere", words="nowhere")


def _get_when_up(url: str, process: subprocess.Popen, within_s: float = 120) -> str:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode("utf-8")
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {within_s:.0f} s")


def test_demo(project: Project, rendered: list[Path]) -> None:
    demo = project.folder / "demo"
    demo.mkdir()
    shutil.copytree(project.folder / "keys", demo / "keys")
    result = project.run(
        "demo",
        "--communes",
        "Collioure",
        "--formats",
        "instagram_square",
        "--output-dir",
        str(demo / "outputs"),
        timeout=600,
        served=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rendered" in result.stdout and (demo / "outputs" / "ete-2027-vivre-en-solane" / "report.html").is_file()
    # The second sample campaign, in the charter's templates, and the layered file of one of its pictures.
    templated = demo / "outputs" / "ete-2027-la-solane-en-bande"
    assert (templated / "report.html").is_file()
    square = sorted((templated / "collioure" / "instagram_square").glob("*.png"))[0]
    layered = project.run("layers", str(square))
    assert layered.returncode == 0 and "layers (" in layered.stdout, layered.stdout + layered.stderr
    assert square.with_suffix(".psd").is_file()
    project.refuses("demo", "--communes", "Paris", words="Paris")
