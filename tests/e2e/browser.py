"""Headless Chromium driven through the DevTools protocol: load a page, run scripts, click, screenshot.

`--dump-dom` can look at a page but not use it; the studio's tests click, paint and submit, so
they talk to Chromium's DevTools websocket (the `websockets` package ships with Prefect).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from contextlib import suppress
from itertools import count
from pathlib import Path
from types import TracebackType
from typing import Any

from visuels.flows.processes import free_port
from websockets.sync.client import connect

from tests.e2e.run_form import CHROMIUM_FLAGS

# What Chromium answers when a script ran into a page being replaced by the next one.
NAVIGATION_ERRORS = ("Inspected target navigated or closed", "Execution context was destroyed", "Cannot find context")


class NavigatedAwayError(RuntimeError):
    """The page navigated while a script was being evaluated in it."""


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, executable: str, width: int = 1400, height: int = 1000) -> None:
        # Chromium's helper processes may still write to the profile for a moment after it exits.
        self._profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        port = free_port()
        flags = [flag for flag in CHROMIUM_FLAGS if not flag.startswith(("--window-size", "--virtual-time"))]
        self._process = subprocess.Popen(
            [
                executable,
                *flags,
                f"--window-size={width},{height}",
                f"--remote-debugging-port={port}",
                f"--user-data-dir={self._profile.name}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: closing stops the helpers too
        )
        self._ids = count(1)
        self._socket = connect(self._page_socket(port), max_size=64 * 1024 * 1024, open_timeout=30)
        self.call("Page.enable")
        self.call("Runtime.enable")

    @staticmethod
    def _page_socket(port: int) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as response:
                    pages = [target for target in json.load(response) if target["type"] == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("chromium did not open its DevTools port")

    def call(self, method: str, **params: Any) -> dict:
        number = next(self._ids)
        self._socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=120))
            if message.get("id") == number:
                if "error" in message:
                    error = str(message["error"])
                    kind = NavigatedAwayError if any(text in error for text in NAVIGATION_ERRORS) else RuntimeError
                    raise kind(f"{method}: {error}")
                return message.get("result", {})

    def evaluate(self, script: str) -> Any:
        """The value of a JavaScript expression (promises awaited)."""
        result = self.call("Runtime.evaluate", expression=script, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            details = str(result["exceptionDetails"])
            if any(text in details for text in NAVIGATION_ERRORS):
                raise NavigatedAwayError(f"{script[:80]}: {details}")
            raise RuntimeError(f"{script[:80]}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    def wait_for(self, condition: str, timeout: float = 120.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(condition)
            except NavigatedAwayError:  # a click or a redirect is loading the next page: ask it again
                value = None
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for: {condition}")

    def click_at(self, x: float, y: float) -> None:
        """A real mouse click (press and release) at page coordinates."""
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def drag(self, points: list[tuple[float, float]]) -> None:
        """Press at the first point, move through the others, release: a brush stroke."""
        x, y = points[0]
        self.call("Input.dispatchMouseEvent", type="mousePressed", x=x, y=y, button="left", clickCount=1)
        for x, y in points[1:]:
            self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y, button="left", buttons=1)
        self.call("Input.dispatchMouseEvent", type="mouseReleased", x=x, y=y, button="left", clickCount=1)

    def centre_of(self, selector: str) -> tuple[float, float]:
        """The viewport coordinates of an element's centre, scrolled into view first."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2, r.width, r.height]; })()"
        )
        return box[0], box[1]

    def screenshot(self, path: Path) -> None:
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._socket.close()
        with suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)
        self._profile.cleanup()
