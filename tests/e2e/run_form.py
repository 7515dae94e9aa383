"""Render-campaign's run form in the Prefect UI, as headless Chromium shows it.

    sudo apt-get install chromium          # Debian; `.ci/run` does it in CI
    .venv/bin/python -m tests.e2e.run_form [--out run-form.png]

Starts a temporary server (SQLite in a temporary PREFECT_HOME, 127.0.0.1, a free port),
registers the deployments of prefect.yaml, then lets Chromium load the deployment's custom-run
page (a single-page app: a virtual-time budget lets its scripts finish) and save a screenshot.
`tests/e2e/test_run_form.py` uses the same page through the DevTools protocol.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from visuels.flows.names import RENDER_DEPLOYMENT
from visuels.flows.processes import free_port, stop, wait_until_healthy
from visuels.flows.serve import register, serving_environment, start_server

# Headless, as root, on a machine with no network: no sandbox, no GPU, no background connections.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,2200",
    "--virtual-time-budget=20000",
]


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def deployment_id(api_url: str, name: str) -> str:
    with urllib.request.urlopen(f"{api_url}/deployments/name/{name}", timeout=10) as response:
        return json.load(response)["id"]


@contextmanager
def served_run_form() -> Iterator[str]:
    """The URL of render-campaign's run form on a temporary server, stopped afterwards."""
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    with tempfile.TemporaryDirectory() as home:
        environment = serving_environment(api_url, {"PREFECT_HOME": home})
        server = start_server(port, environment)
        try:
            wait_until_healthy(api_url, server)
            register(environment, pool_gpus=1)
            yield f"http://127.0.0.1:{port}/deployments/deployment/{deployment_id(api_url, RENDER_DEPLOYMENT)}/run"
        finally:
            stop([server])


def _chromium(browser: str, *arguments: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments],
            capture_output=True,  # Chromium complains at length about the missing D-Bus: keep it quiet
            text=True,
            timeout=120,
        )
    if done.returncode:
        raise RuntimeError(f"chromium exited with code {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def screenshot(browser: str, page: str, out: Path) -> None:
    _chromium(browser, f"--screenshot={out.resolve()}", page)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("run-form.png"))
    args = parser.parse_args()
    browser = find_chromium()
    if browser is None:
        print("error: chromium not found (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    with served_run_form() as page:
        screenshot(browser, page, args.out)
    print(f"screenshot of {page} in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
