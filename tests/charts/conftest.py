"""A local stand-in for TradingView, and captures that are always closed, with no browser left behind.

The stand-in answers as https://www.tradingview.com: the capture only opens TradingView's pages over HTTPS,
so the test browser's resolver maps that one name to the stand-in's port (and no other name to anything) and
accepts the stand-in's self-signed certificate. The capture's code runs as in production; only the host
rules and the certificate check differ."""

import datetime as dt
import os
import signal
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from automation.charts.tradingview import TradingViewCapture

HOST = "www.tradingview.com"

BACKGROUND = (18, 171, 52)  # the chart canvas fills the viewport with this colour...
MARK = (200, 30, 90)  # ...and draws a square of this one at its centre
MARK_SIZE = 100
# A page that must not answer within a capture's short test timeout.
SLOW_SECONDS = 20

CHART_PAGE = """<!doctype html>
<html><body style="margin: 0">
<script>
  // Like a chart site: the canvas appears after the document, drawn by script, as large as the viewport.
  setTimeout(() => {{
    const canvas = document.createElement("canvas");
    canvas.width = window.innerWidth;
    canvas.height = window.innerHeight;
    canvas.style.display = "block";
    document.body.appendChild(canvas);
    const context = canvas.getContext("2d");
    context.fillStyle = "rgb({background})";
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.fillStyle = "rgb({mark})";
    context.fillRect(canvas.width / 2 - {half}, canvas.height / 2 - {half}, {size}, {size});
  }}, {delay_ms});
</script>
</body></html>"""
BLANK_PAGE = "<!doctype html><html><body><p>No chart here.</p></body></html>"
HUNG_PAGE = "<!doctype html><html><body><script>while (true) {}</script></body></html>"


def chart_page(delay_ms: int) -> str:
    return CHART_PAGE.format(
        background=",".join(map(str, BACKGROUND)),
        mark=",".join(map(str, MARK)),
        half=MARK_SIZE // 2,
        size=MARK_SIZE,
        delay_ms=delay_ms,
    )


def certificate_files(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for HOST and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


class ChartSite(ThreadingHTTPServer):
    """/chart?delay_ms=N draws the canvas after N ms; /blank never shows one; /hung never stops its script;
    /slow does not answer within SLOW_SECONDS; /crash?tag=T kills the browsers tagged T;
    /redirect?to=URL answers 302 to URL; /leave?to=URL draws the chart, then its script goes to URL."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ChartSiteHandler)
        self.release = threading.Event()  # ends the slow requests' wait when the site stops
        with tempfile.TemporaryDirectory() as folder:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*certificate_files(Path(folder)))
        self.socket = context.wrap_socket(self.socket, server_side=True)

    def url(self, path: str) -> str:
        return f"https://{HOST}{path}"

    def capture_options(self) -> dict:
        """What a test's TradingViewCapture needs to reach this site, and nothing else."""
        return {
            "host_rules": f"MAP {HOST} 127.0.0.1:{self.server_port} , MAP * ~NOTFOUND",
            "extra_args": ("--ignore-certificate-errors",),
        }


class ChartSiteHandler(BaseHTTPRequestHandler):
    server: ChartSite

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/chart":
            body = chart_page(int(parse_qs(url.query).get("delay_ms", ["0"])[0]))
        elif url.path == "/blank":
            body = BLANK_PAGE
        elif url.path == "/hung":
            body = HUNG_PAGE
        elif url.path == "/slow":
            self.server.release.wait(SLOW_SECONDS)
            body = BLANK_PAGE
        elif url.path in ("/redirect", "/leave"):
            target = parse_qs(url.query)["to"][0]
            if url.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = chart_page(0).replace("</body>", f"<script>location = {target!r};</script></body>")
        elif url.path == "/crash":
            # As if the page crashed the browser that asked for it: the test names its browsers' tag.
            for pid in browser_pids(parse_qs(url.query)["tag"][0]):
                os.kill(pid, signal.SIGKILL)
            body = BLANK_PAGE
        else:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:
        pass  # keep the test output to the tests


@contextmanager
def serving_chart_site() -> Iterator[ChartSite]:
    site = ChartSite()
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.release.set()
        site.shutdown()
        site.server_close()
        thread.join()


# The browsers started by a test carry this variable, inherited from the test's environment through
# chromedriver, so that the test finds its own processes among those of other runs on the machine.
TAG_VARIABLE = "TRADINGAI_TEST_BROWSER_TAG"


def tagged_processes(tag: str) -> dict[int, list[str]]:
    """The live processes carrying the tag: pid → command line."""
    found = {}
    marker = f"{TAG_VARIABLE}={tag}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            # Field 3 of stat is the state; a zombie has exited, only its parent has not collected it.
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().decode().split("\0")
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue  # exited while we looked, or not ours
        if state != "Z":
            found[int(entry.name)] = command
    return found


def browser_pids(tag: str) -> set[int]:
    """Chromium's main processes; the others have a --type (renderer, gpu-process, zygote...)."""
    return {
        pid
        for pid, command in tagged_processes(tag).items()
        if Path(command[0]).name == "chromium" and not any(arg.startswith("--type=") for arg in command)
    }


def wait_until(condition, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: starts a real headless Chromium")


@pytest.fixture(scope="module")
def site() -> Iterator[ChartSite]:
    with serving_chart_site() as site:
        yield site


@pytest.fixture
def browser_tag(monkeypatch) -> Iterator[str]:
    tag = uuid4().hex
    monkeypatch.setenv(TAG_VARIABLE, tag)
    yield tag
    # Runs after make_capture's finaliser, which depends on this fixture.
    assert wait_until(lambda: not tagged_processes(tag)), f"left running: {tagged_processes(tag)}"


@pytest.fixture
def make_capture(site, browser_tag) -> Iterator:
    """Captures that reach the stand-in site and nothing else, closed at the end of the test."""
    captures = []

    def make(**kwargs) -> TradingViewCapture:
        capture = TradingViewCapture(**{**site.capture_options(), **kwargs})
        captures.append(capture)
        return capture

    yield make
    for capture in captures:
        capture.close()


@pytest.fixture
def kill(browser_tag):
    """Sends SIGKILL to a process this test started, never to anyone else's."""

    def kill(pid: int) -> None:
        assert pid in tagged_processes(browser_tag)
        os.kill(pid, signal.SIGKILL)

    return kill
