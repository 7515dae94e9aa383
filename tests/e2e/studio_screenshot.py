"""A screenshot of the studio's retouch page with variants, for the README.

    .venv/bin/python -m tests.e2e.studio_screenshot OUTPUT_DIR FILE --out docs/studio-retouch.png

Serves the studio over OUTPUT_DIR (as `visuels studio` does), brushes a stroke on FILE (relative
to OUTPUT_DIR), asks for two variants, and saves what Chromium shows. With ``--edit-model DIR``
the variants are made by instruction with that edit model.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import uvicorn
from visuels.flows.processes import free_port
from visuels.inputs.charter import load_charter
from visuels.marking.keys import signing_files
from visuels.record.database import Database, database_url
from visuels.review.retouch import instruct_model
from visuels.studio.app import Studio, create_app

from tests.e2e.browser import Browser
from tests.e2e.run_form import find_chromium
from tests.helpers import SAMPLE_CHARTER_DIR


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("file")
    parser.add_argument("--out", type=Path, default=Path("studio-retouch.png"))
    parser.add_argument("--edit-model", help="an edit model's folder: retouch by instruction")
    args = parser.parse_args()
    browser_path = find_chromium()
    if browser_path is None:
        print("error: chromium not found (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    out = args.output_dir.resolve()
    edit_model = instruct_model(args.edit_model) if args.edit_model else None
    charter, signing = load_charter(SAMPLE_CHARTER_DIR), signing_files()
    studio = Studio(out, Database(database_url(out)), charter, signing, "cpu", edit_model=edit_model)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(studio), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.1)
    with Browser(browser_path, width=1400, height=900) as browser:
        browser.goto(f"http://127.0.0.1:{port}/retouch?file={args.file}")
        browser.wait_for("document.getElementById('mask').width > 0")
        x, y = browser.centre_of("#mask")
        browser.drag([(x - 80, y - 60), (x - 20, y), (x + 40, y + 30), (x + 80, y + 60)])
        if edit_model is not None:
            browser.evaluate(
                "const m = document.getElementById('mode'); m.value = 'instruct'; m.dispatchEvent(new Event('change'))"
            )
        browser.evaluate("document.getElementById('prompt').value = 'a lighthouse on the jetty'")
        browser.evaluate("document.getElementById('variants').value = 2")
        browser.click_at(*browser.centre_of("#make"))
        browser.wait_for("document.querySelectorAll('.variant img').length === 2")
        browser.wait_for("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
        browser.evaluate("window.scrollTo(0, 0)")
        browser.screenshot(args.out)
    server.should_exit = True
    studio.database.close()
    print(f"screenshot in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
