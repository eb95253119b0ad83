"""The report opened in a real headless Chromium (Debian's ``chromium``), driven over the
DevTools protocol: every section is rendered, every chart has a size, a screenshot is taken,
and no request leaves the page — each network request and console message is recorded while
the page loads with the network switched off.

Chromium is started once per session on a DevTools port it picks itself
(``--remote-debugging-port=0``; the port is read from ``DevToolsActivePort`` in a fresh
``--user-data-dir`` under ``tempfile.mkdtemp()``) and stopped at the end, also on failure.
Without Chromium the tests skip, with ``DSNPARSE_CI=1`` they fail (.ci/setup.d/40-chromium.sh
installs it).
"""
from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="the report needs matplotlib (dsnparse[report])")
websocket = pytest.importorskip("websocket", reason="websocket-client (dsnparse[report]) "
                                                    "drives Chromium's DevTools protocol")

from dsnparse.ledger import Ledger
from dsnparse.report import build_report
from dsnparse.report.page import SECTIONS

from conftest import SHARED, SISIMAI

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc).timestamp()
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _unavailable(msg: str):
    if os.environ.get("DSNPARSE_CI"):
        pytest.fail(f"headless Chromium required in CI but unavailable: {msg}")
    pytest.skip(f"headless Chromium unavailable: {msg} (bash .ci/setup.d/40-chromium.sh "
                f"installs it)")


class Browser:
    """One headless Chromium process and its DevTools endpoint."""

    def __init__(self, exe: str):
        self.dir = tempfile.mkdtemp(prefix="dsnparse-chromium-")
        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             "--remote-allow-origins=*", f"--user-data-dir={self.dir}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_file = Path(self.dir) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode(errors="replace")[-800:] \
                    if self.proc.poll() is not None else "no DevTools port within 60 s"
                self.close()
                raise RuntimeError(err)
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])

    def new_page(self) -> "Page":
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank",
                                     method="PUT")
        with urllib.request.urlopen(req, timeout=30) as r:
            target = json.load(r)
        return Page(self, target)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Page:
    """A tab: send DevTools commands, keep every event that arrives."""

    def __init__(self, browser: Browser, target: dict):
        self.browser, self.id = browser, target["id"]
        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=60,
                                              suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def send(self, method: str, **params):
        n = next(self.ids)
        self.ws.send(json.dumps({"id": n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {timeout} s")
            self.events.append(json.loads(self.ws.recv()))

    def eval(self, expr: str):
        res = self.send("Runtime.evaluate", expression=expr, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(res["exceptionDetails"])
        return res["result"].get("value")

    def close(self) -> None:
        self.ws.close()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{self.browser.port}/json/close/"
                                   f"{self.id}", timeout=10).close()
        except OSError:
            pass


@pytest.fixture(scope="session")
def browser():
    exe = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if exe is None:
        _unavailable("no chromium on PATH")
    try:
        b = Browser(exe)
    except (RuntimeError, OSError) as e:
        _unavailable(str(e))
    try:
        yield b
    finally:
        b.close()


def open_offline(browser: Browser, path: Path) -> tuple[Page, str]:
    """Load ``path`` with the network off, recording requests, console and exceptions."""
    page = browser.new_page()
    for domain in ("Network", "Page", "Runtime", "Log"):
        page.send(f"{domain}.enable")
    page.send("Network.emulateNetworkConditions", offline=True, latency=0,
              downloadThroughput=-1, uploadThroughput=-1)
    page.send("Emulation.setDeviceMetricsOverride", width=1280, height=900,
              deviceScaleFactor=1, mobile=False)
    url = path.resolve().as_uri()
    page.send("Page.navigate", url=url)
    page.wait_for("Page.loadEventFired")
    page.eval("1")          # drain what arrived meanwhile
    return page, url


def check(page: Page, url: str, shots: Path, name: str) -> dict:
    """Assert the page is whole and self-contained; return what was measured."""
    requests = [e["params"]["request"]["url"] for e in page.events
                if e.get("method") == "Network.requestWillBeSent"]
    failed = [e["params"] for e in page.events if e.get("method") == "Network.loadingFailed"]
    console = [e["params"] for e in page.events
               if e.get("method") in ("Runtime.consoleAPICalled", "Runtime.exceptionThrown")
               or (e.get("method") == "Log.entryAdded"
                   and e["params"]["entry"]["level"] in ("error", "warning"))]
    assert requests == [url], f"requests besides the file itself: {requests}"
    assert not failed and not console, (failed, console)
    sizes = page.eval("""JSON.stringify(Array.from(document.querySelectorAll('section')).map(
        s => ({id: s.id, h: s.getBoundingClientRect().height, text: s.innerText.length,
               charts: Array.from(s.querySelectorAll('svg')).map(g => {
                   const r = g.getBoundingClientRect(); return [r.width, r.height]; }),
               tables: s.querySelectorAll('table tbody tr').length})))""")
    found = {s["id"]: s for s in json.loads(sizes)}
    assert set(found) == set(SECTIONS)
    for sid, s in found.items():
        assert s["h"] > 40 and s["text"] > 20, f"section {sid} is not rendered: {s}"
        for w, h in s["charts"]:
            assert w > 100 and h > 60, f"a chart of {sid} has no size: {s}"
    # the charts' <use> elements (ticks, markers) find what they reference, in the SVG
    # namespace the HTML parser gives them (the page declares no xmlns)
    uses = json.loads(page.eval("""JSON.stringify(Array.from(document.querySelectorAll('svg use'))
        .map(u => { const ref = u.getAttributeNS('http://www.w3.org/1999/xlink', 'href');
                    const b = u.getBBox();
                    return [ref, !!(ref && document.getElementById(ref.slice(1))),
                            b.width + b.height, u.namespaceURI]; }))"""))
    assert uses, "no <use> element in the charts"
    bad = [u for u in uses if not (u[1] and u[2] > 0 and u[3] == "http://www.w3.org/2000/svg")]
    assert not bad, bad[:5]
    shot = page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                     clip={"x": 0, "y": 0, "width": 1280, "height": min(page.eval(
                         "document.documentElement.scrollHeight"), 6000), "scale": 1})
    png = base64.b64decode(shot["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    (shots / f"{name}.png").write_bytes(png)
    return found


@pytest.fixture(scope="module")
def shots():
    d = Path(tempfile.mkdtemp(prefix="dsnparse-report-shots-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_report_renders_every_section_offline_without_any_request(browser, shots, tmp_path):
    evil = '<img src="http://evil.example/pixel.png">'
    with Ledger(tmp_path / "l.sqlite3") as led:
        for i, (reason, status, code, btype, fault) in enumerate([
                ("user_unknown", "5.1.1", "511", "hard", "recipient"),
                ("blocked", "5.7.1", "571", "hard", "sender"),
                ("auth_failure", "5.7.26", "570", "hard", "sender"),
                ("mailbox_full", "4.2.2", "452", "soft", "mailbox")] * 6):
            led.record_event(f"u{i}@d{i % 5}.example", "bounce", at=T0 + i * 7200,
                             reason=reason, status=status, code=code, bounce_type=btype,
                             fault=fault, campaign=f"campaign-{i % 3}",
                             diagnostic_code=f"550 {status} refused {evil}")
        led.record_event("x@d1.example", "bounce", at=T0 + 3600, code="911",
                         bounce_type="hard", fault="unknown")
        page_file = tmp_path / "report.html"
        page_file.write_text(build_report(led, generated=T0), encoding="utf-8")
    page, url = open_offline(browser, page_file)
    try:
        found = check(page, url, shots, "synthetic")
        assert page.eval("document.querySelector('section').id") == "summary"
        assert page.eval("document.querySelectorAll('section')[1].id") == "sender"
        assert found["sender"]["tables"] >= 2 and found["campaigns"]["tables"] == 3
        # the hostile diagnostic is shown as text
        assert evil in page.eval("document.getElementById('sender').innerText")
        assert page.eval("document.images.length") == 0
    finally:
        page.close()


def test_report_of_the_shared_corpus_renders_in_french(browser, shots, tmp_path):
    """The corpus report of docs/ (sisimai + extra) in French, built by the command."""
    if not SISIMAI.exists() or not (SHARED / "corpus" / "extra").exists():
        pytest.skip(f"{SISIMAI} or {SHARED / 'corpus' / 'extra'} is absent: the shared corpus "
                    f"is expected beside the project checkout (../shared)")
    import sys

    out = tmp_path / "corpus.html"
    r = subprocess.run([sys.executable, "-m", "dsnparse", "report", str(SISIMAI),
                        str(SHARED / "corpus" / "extra"), "--lang", "fr", "-o", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    page, url = open_offline(browser, out)
    try:
        found = check(page, url, shots, "corpus-fr")
        assert page.eval("document.documentElement.lang") == "fr"
        assert "Adresse incorrecte" in page.eval("document.getElementById('reasons').innerText")
        assert all(len(found[s]["charts"]) >= 1 for s in ("daily", "domains", "reasons"))
    finally:
        page.close()
