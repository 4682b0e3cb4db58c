"""The report in a real headless browser: it loads with no console error, and every image
decodes to a non-zero size, for digits (a real tiny search's report) and for series of
unequal lengths (a run built by hand). Drives Debian's `chromium` over the DevTools
protocol on a pipe (stdlib only, nothing to download)."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from analysis import report
from tests.fake_run import build_run

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# CI sets this so that a missing browser fails the run instead of skipping the test.
REQUIRED = os.environ.get("LSTM_SEARCH_REQUIRE_BROWSER") == "1"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",  # commands on fd 3, replies on fd 4, NUL-terminated JSON
]
IMAGES = (
    "JSON.stringify([...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]))"
)


class Browser:
    """Just enough of the Chrome DevTools protocol to load a page and read it."""

    def __init__(self, executable: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        child_in, self._out = os.pipe()
        self._in, child_out = os.pipe()

        def pipes_on_3_and_4() -> None:  # runs in the child, before exec
            high_in, high_out = os.dup2(child_in, 100), os.dup2(child_out, 101)
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)

        self.process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            preexec_fn=pipes_on_3_and_4,
            close_fds=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(child_in)
        os.close(child_out)
        self._buffer = b""
        self._id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        reply = self._read_until(lambda m: m.get("id") == self._id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def open(self, url: str, domains: tuple[str, ...] = ("Page",)) -> str:
        """Load `url` in the browser's tab, with events of `domains` on; returns the
        tab's session id."""
        targets = self.send("Target.getTargets")["targetInfos"]
        tab = next(t for t in targets if t["type"] == "page")
        session = self.send(
            "Target.attachToTarget", {"targetId": tab["targetId"], "flatten": True}
        )["sessionId"]
        for domain in domains:
            self.send(f"{domain}.enable", session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        return session

    def wait_for(self, event: str) -> dict:
        seen = [e for e in self.events if e["method"] == event]
        return seen[0] if seen else self._read_until(lambda m: m.get("method") == event)

    def _read_until(self, wanted, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if wanted(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError("no reply from chromium")
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                raise EOFError("chromium closed the pipe")
            self._buffer += chunk

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.process.wait(timeout=20)
        except (OSError, EOFError, TimeoutError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            os.close(self._in)
            os.close(self._out)
            shutil.rmtree(self.profile, ignore_errors=True)


def load(page: Path) -> tuple[list[str], list[list]]:
    """Open `page`; return (console errors, [complete, naturalWidth, naturalHeight] per img)."""
    browser = Browser(CHROMIUM)
    try:
        session = browser.open(page.resolve().as_uri(), domains=("Runtime", "Log", "Page"))
        browser.wait_for("Page.loadEventFired")
        images = browser.send(
            "Runtime.evaluate", {"expression": IMAGES, "returnByValue": True}, session=session
        )["result"]["value"]
        errors = []
        for event in browser.events:
            params = event["params"]
            if event["method"] == "Runtime.exceptionThrown":
                errors.append(params["exceptionDetails"].get("text", "exception"))
            elif event["method"] == "Runtime.consoleAPICalled" and params["type"] in (
                "error",
                "assert",
            ):
                errors.append(
                    " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
                )
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(params["entry"]["text"])
        return errors, json.loads(images)
    finally:
        browser.close()


@pytest.fixture(scope="module")
def chromium():
    if CHROMIUM is None:
        if REQUIRED:
            pytest.fail("chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return CHROMIUM


def test_the_checker_sees_errors_and_broken_images(chromium, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img src="missing.png">'
        '<script>console.error("deliberate")</script></body></html>'
    )
    errors, images = load(page)
    assert any("deliberate" in e for e in errors)
    assert images == [[True, 0, 0]]


def test_report_loads_cleanly_in_chromium(chromium, tiny_run, tmp_path):
    run_dir = shutil.copytree(tiny_run[1], tmp_path / "run")
    assert_loads_cleanly(report.write_report(run_dir))


def test_a_series_report_loads_cleanly_in_chromium(chromium, tmp_path):
    run_dir = build_run(tmp_path, "series", objective="early", loss="all", kind="series")
    out = report.write_report(run_dir)
    assert (out / "series_1.png").is_file()  # the series picture, not the digits'
    assert_loads_cleanly(out)


def assert_loads_cleanly(out: Path) -> None:
    errors, images = load(out / "index.html")
    assert errors == []
    assert len(images) == len(list(out.glob("*.png"))) > 0
    assert all(complete and width > 0 and height > 0 for complete, width, height in images)
