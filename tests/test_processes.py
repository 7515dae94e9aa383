"""No process outlives what started it: a killed ``visuels render`` takes its temporary Prefect
server and its CPU workers with it; ``make serve`` (``python -m visuels.flows.serve``) starts a
render worker that stops again, stops everything it started on SIGTERM, refuses a port already
taken in one line, and answers only its own user: its own Host names, no cross-site requests,
and an API key when bound beyond loopback."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from visuels.flows.processes import free_port

from tests.helpers import REPO, SAMPLE_CHARTER_DIR

pytestmark = pytest.mark.integration


def group_members(group: int) -> list[int]:
    """The live (not zombie) processes whose process group is ``group``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == group:
            members.append(int(entry.name))
    return members


def wait_until_group_gone(group: int, within_s: float) -> list[int]:
    deadline = time.monotonic() + within_s
    while (left := group_members(group)) and time.monotonic() < deadline:
        time.sleep(0.3)
    return left


def describe(pids: list[int]) -> list[str]:
    described = []
    for pid in pids:
        try:
            described.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:160])
        except OSError:
            continue
    return described


def _start_a_render(tmp_path: Path) -> subprocess.Popen:
    """`visuels render` of a campaign of 12 pictures at 12 steps, in a process group of its own
    (everything it starts is in it), with a keys folder of its own; what it says in ``said.txt``."""
    (tmp_path / "campaign.yaml").write_text(
        f"""
name: Tuée
charter: {SAMPLE_CHARTER_DIR / "charter.yaml"}
communes: {{file: {SAMPLE_CHARTER_DIR / "communes.csv"}, names: ["Sète", "Collioure"]}}
model: {{kind: demo}}
prompt: "poster of {{commune}}, {{landscape}}, for {{audience}}"
season: summer
audiences: {{residents: families, visitors: tourists}}
formats: [instagram_square, story, web_banner]
steps: 12
photos: null
""",
        encoding="utf-8",
    )
    environment = os.environ | {"VISUELS_KEYS_DIR": str(tmp_path / "keys"), "PREFECT_HOME": str(tmp_path / "prefect")}
    environment.pop("PREFECT_API_URL", None)
    script = str(Path(sys.executable).parent / "visuels")
    subprocess.run([script, "keys", "init"], cwd=tmp_path, env=environment, check=True, capture_output=True)
    return subprocess.Popen(
        [script, "render", "campaign.yaml", "--cpu-workers", "2", "--batch-size", "1"],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "said.txt").open("w"),  # a file: a pipe left unread would fill and stop it
        start_new_session=True,
    )


@pytest.mark.timeout(420)
def test_a_killed_render_leaves_no_process_of_its_group(tmp_path: Path) -> None:
    render = _start_a_render(tmp_path)
    deadline = time.monotonic() + 300
    out = tmp_path / "outputs"
    while not list(out.rglob("thumbnails/*.jpg")) and time.monotonic() < deadline:  # pictures being recorded
        assert render.poll() is None, "the render ended before it could be killed"
        time.sleep(0.2)
    members = group_members(render.pid)
    assert len(members) >= 4, describe(members)  # the CLI, its Prefect server, the CPU workers...
    os.kill(render.pid, signal.SIGKILL)
    render.wait()
    left = wait_until_group_gone(render.pid, within_s=30)
    assert left == [], describe(left)


@pytest.mark.timeout(300)
def test_a_render_whose_temporary_server_is_killed_says_so_in_one_line_and_ends(tmp_path: Path) -> None:
    """The CLI's own Prefect server killed mid-run (the out-of-memory killer's pick): the render
    stopped with Prefect's 60-line traceback, and its process then waited at exit for the server,
    for ever (Prefect's exit handlers). Now: one line, exit 3, within seconds, nothing left."""
    render = _start_a_render(tmp_path)
    deadline = time.monotonic() + 240
    servers: list[int] = []
    while not servers and time.monotonic() < deadline:
        assert render.poll() is None, (tmp_path / "said.txt").read_text()
        servers = [pid for pid in group_members(render.pid) if "prefect_server" in " ".join(describe([pid]))]
        time.sleep(0.2)
    while not list((tmp_path / "outputs").rglob("thumbnails/*.jpg")) and time.monotonic() < deadline:
        time.sleep(0.2)  # rendering
    os.kill(servers[0], signal.SIGKILL)
    killed = time.monotonic()
    render.wait(timeout=60)
    assert render.returncode == 3 and time.monotonic() - killed < 30, (tmp_path / "said.txt").read_text()
    left = wait_until_group_gone(render.pid, within_s=30)
    assert left == [], describe(left)
    stderr = (tmp_path / "said.txt").read_text()  # with what its helper processes said as they ended
    said = [line for line in stderr.splitlines() if line.strip() and "━" not in line]  # no bar: the line alone
    assert said == [
        "error: Prefect: the temporary server of this command stopped during the run (killed, or out of"
        " memory?): run the command again; what was recorded is kept"
    ], stderr  # no traceback, nor multiprocessing's warning of leaked semaphores after it


def _request(url: str, auth: str | None = None, **headers: str) -> tuple[int, str]:
    data = headers.pop("data", None)
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    request = urllib.request.Request(
        url, data=data.encode() if data else None, headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _scheduled_nightly_runs(api_url: str, auth: str, within_s: float = 90) -> list:
    """The nightly deployment's scheduled runs, once its server's scheduler has made some."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    deadline, runs = time.monotonic() + within_s, []
    settings = {PREFECT_API_URL: api_url, PREFECT_API_AUTH_STRING: auth}
    with temporary_settings(settings), get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name("render-nightly/render-nightly")
        only_nightly = DeploymentFilter(id=DeploymentFilterId(any_=[nightly.id]))
        while not runs and time.monotonic() < deadline:
            runs = [
                run for run in client.read_flow_runs(deployment_filter=only_nightly) if run.state_type == "SCHEDULED"
            ]
            time.sleep(1)
    return runs


@pytest.mark.timeout(420)
def test_make_serve_answers_its_own_user_refuses_a_taken_port_and_stops_everything_on_sigterm(
    tmp_path: Path,
) -> None:
    port = free_port()
    # A project with no campaign: the scheduler stays on (checked below), and should the nightly
    # fall due while the test runs (02:00 Paris), it renders nothing into the checkout.
    (tmp_path / "project" / "campaigns").mkdir(parents=True)
    environment = os.environ | {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "VISUELS_KEYS_DIR": str(tmp_path / "keys"),
        "VISUELS_HOME": str(tmp_path / "project"),
    }
    environment.pop("PREFECT_API_URL", None)
    serve = subprocess.Popen(
        [sys.executable, "-m", "visuels.flows.serve", "--port", str(port), "--workers", "1", "--host", "0.0.0.0"],
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert serve.stdout is not None
        lines = []
        for line in serve.stdout:
            lines.append(line)
            if line.startswith("Prefect UI:"):
                break
        assert lines and lines[-1].startswith("Prefect UI:"), "".join(lines)
        api = f"http://127.0.0.1:{port}/api"
        auth = (tmp_path / "prefect" / "visuels-api-auth").read_text().strip()
        assert (tmp_path / "prefect" / "visuels-api-auth").stat().st_mode & 0o777 == 0o600
        pool = f"{api}/work_pools/visuels"
        assert _request(pool, auth)[0] == 200
        assert _request(pool)[0] == 401  # bound beyond loopback: the API asks for its key
        rebound = _request(pool, auth, Host="evil.example")  # DNS rebinding
        assert rebound[0] == 403 and "evil.example" in rebound[1]
        query = {"data": json.dumps({"limit": 1})}
        cross_site = _request(f"{api}/flow_runs/filter", auth, Origin="http://evil.example", **query)
        assert cross_site[0] == 403 and "another site" in cross_site[1]
        csrf = _request(f"{api}/flow_runs/filter", auth, **query)  # and Prefect's own CSRF check is on
        assert csrf[0] == 403 and "CSRF" in csrf[1]
        assert _scheduled_nightly_runs(api, auth)  # the scheduler service put the nightly's next runs in

        second = subprocess.run(
            [sys.executable, "-m", "visuels.flows.serve", "--port", str(port)],
            cwd=REPO,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 3, second.stdout + second.stderr
        assert second.stderr.strip().splitlines() == [
            f"error: port {port}: is taken: a server from another start still runs there (stop it), or choose"
            " another --port"
        ]
        started = group_members(serve.pid)
        assert len(started) >= 6, describe(started)  # server, 3 process workers, a render worker, and itself

        # A render worker killed while serving is started again, and subscribes to its task anew.
        (render_worker,) = [pid for pid in started if "visuels.flows.render_batches" in " ".join(describe([pid]))]
        os.kill(render_worker, signal.SIGKILL)
        for line in serve.stdout:
            lines.append(line)
            if "Subscribing to runs of task(s): render_chunk_task" in line:
                break
        restarted = "".join(lines).split("a render worker stopped (exit code -9): starting it again", 1)
        assert len(restarted) == 2 and "render_chunk_task" in restarted[1], "".join(lines[-20:])

        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
        left = wait_until_group_gone(serve.pid, within_s=30)
        assert left == [], describe(left)
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()


def test_a_render_worker_that_stops_before_connecting_is_one_line_for_make_serve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under a Prefect server stalled by a locked SQLite database, a render worker once stopped
    while `make serve` waited for it: the start now ends in one line naming it, not a traceback."""
    import visuels.flows.render_batches as render_batches_module
    from visuels.errors import OperationalError
    from visuels.flows.serve import wait_for_render_workers

    monkeypatch.setattr(render_batches_module, "connected_render_workers", frozenset)
    stopped = subprocess.Popen([sys.executable, "-c", "pass"])
    stopped.wait()
    with pytest.raises(OperationalError, match=r"it stopped \(exit code 0\) before it connected") as caught:
        wait_for_render_workers("http://127.0.0.1:9/api", [stopped], timeout=5)
    assert caught.value.exit_code == 3 and caught.value.file == "render worker"


def test_make_serve_refuses_keys_that_cannot_sign_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pool started with a damaged signer key took every run and failed each at its plan: it
    says so once, at its start, in one line (exit 2), and starts no process."""
    import visuels.flows.serve as serve
    from visuels.marking.keys import init_local_chain

    keys = tmp_path / "keys"
    init_local_chain(keys)
    (keys / "signer.key").write_text("garbage\n")
    monkeypatch.setenv("VISUELS_KEYS_DIR", str(keys))
    monkeypatch.setattr(serve, "start_server", lambda *arguments: pytest.fail("a process was started"))
    monkeypatch.setattr(serve.signal, "signal", lambda *arguments: None)  # this test process keeps its own
    assert serve.main(["--port", str(free_port())]) == 2
    assert capsys.readouterr().err == f"error: {keys / 'signer.key'}: not a private key in PEM form\n"
