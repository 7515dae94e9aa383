"""Open render-campaign's run form in headless Chromium and save a screenshot.

    sudo apt-get install chromium          # Debian; once
    .venv/bin/python tests/e2e/screenshot_run_form.py [--out run-form.png]

Starts a temporary server (SQLite in a temporary PREFECT_HOME, 127.0.0.1, a free port),
registers the deployments of prefect.yaml, then lets Chromium load the deployment's custom-run
page and render it (the UI is a single-page app: a virtual-time budget lets its scripts finish).
Not part of `make test`: CI machines lack Chromium, and this check is visual.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from flows.serve import register, serving_environment, start_server, wait_until_healthy


def deployment_id(api_url: str, name: str) -> str:
    with urllib.request.urlopen(f"{api_url}/deployments/name/{name}", timeout=10) as response:
        return json.load(response)["id"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("run-form.png"))
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("error: chromium not found (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api_url = f"http://127.0.0.1:{port}/api"
    with tempfile.TemporaryDirectory() as home:
        environment = serving_environment(api_url, {"PREFECT_HOME": home})
        server = start_server(port, environment)
        try:
            wait_until_healthy(api_url, server)
            register(environment, gpu_slots=1)
            render = deployment_id(api_url, "render-campaign/render-campaign")
            page = f"http://127.0.0.1:{port}/deployments/deployment/{render}/run"
            subprocess.run(
                [
                    browser,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--window-size=1280,2200",
                    "--virtual-time-budget=20000",
                    f"--screenshot={args.out.resolve()}",
                    page,
                ],
                check=True,
                timeout=120,
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"screenshot of {page} in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
