"""The TradingView capture against a local chart site, with a real headless Chromium."""

import io
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

import pytest
from PIL import Image

from automation.charts.errors import ChartError, ChartTemporaryError
from automation.charts.tradingview import TradingViewCapture, shared_capture
from tests.charts.conftest import BACKGROUND, MARK, browser_pids, tagged_processes, wait_until

pytestmark = pytest.mark.browser

SHORT_TIMEOUT = 3
# Giving up includes quitting the stuck browser, which takes a moment after the timeout itself.
GIVING_UP_SECONDS = SHORT_TIMEOUT + 5


def image(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("RGB")


def test_captures_the_chart_drawn_after_the_page_loaded(site, make_capture):
    png = make_capture().capture(site.url("/chart?delay_ms=300"))

    chart = image(png)
    assert chart.size == (1280, 720)
    # The canvas was sized to the viewport: its colour reaches every corner.
    for corner in [(0, 0), (1279, 0), (0, 719), (1279, 719)]:
        assert chart.getpixel(corner) == BACKGROUND
    assert chart.getpixel((640, 360)) == MARK


def test_reuses_one_browser(site, make_capture, browser_tag):
    capture = make_capture()
    capture.capture(site.url("/chart"))
    driver, session_id, [browser] = capture.driver, capture.driver.session_id, browser_pids(browser_tag)

    chart = image(capture.capture(site.url("/chart?delay_ms=100")))

    assert capture.driver is driver
    assert capture.driver.session_id == session_id
    assert browser_pids(browser_tag) == {browser}
    assert chart.size == (1280, 720)  # the viewport survives navigation
    assert chart.getpixel((640, 360)) == MARK


def test_captures_from_several_threads_share_the_browser(site, make_capture, browser_tag):
    capture = make_capture()

    with ThreadPoolExecutor(max_workers=3) as pool:
        pngs = list(pool.map(capture.capture, [site.url(f"/chart?delay_ms={ms}") for ms in (0, 50, 100)]))

    assert [image(png).getpixel((640, 360)) for png in pngs] == [MARK] * 3
    assert len(browser_pids(browser_tag)) == 1


def quit_behind_its_back(capture, browser_tag, kill):
    capture.driver.quit()


def kill_chromium(capture, browser_tag, kill):
    [browser] = browser_pids(browser_tag)
    kill(browser)


def kill_chromedriver(capture, browser_tag, kill):
    kill(capture.driver.service.process.pid)


@pytest.mark.parametrize("death", [quit_behind_its_back, kill_chromium, kill_chromedriver])
def test_replaces_a_browser_that_died(site, make_capture, browser_tag, kill, death):
    capture = make_capture()
    capture.capture(site.url("/chart"))
    [old_browser], old_session = browser_pids(browser_tag), capture.driver.session_id

    death(capture, browser_tag, kill)
    png = capture.capture(site.url("/chart"))

    assert image(png).getpixel((640, 360)) == MARK
    assert capture.driver.session_id != old_session
    # The old browser is gone, even when its chromedriver was killed and could not close it.
    assert wait_until(lambda: old_browser not in browser_pids(browser_tag))
    assert len(browser_pids(browser_tag)) == 1


def test_gives_up_when_the_browser_dies_again_after_a_restart(site, make_capture, browser_tag):
    capture = make_capture()

    with pytest.raises(ChartTemporaryError, match="failed again after a restart"):
        capture.capture(site.url(f"/crash?tag={browser_tag}"))

    assert capture.driver is None


def test_a_page_that_does_not_load_is_a_temporary_error_and_keeps_the_browser(
    site, make_capture, browser_tag
):
    capture = make_capture()
    capture.capture(site.url("/chart"))
    driver, browsers = capture.driver, browser_pids(browser_tag)

    # Every host but the stand-in's is unknown to the test browser.
    with pytest.raises(ChartTemporaryError, match=r"did not load: .*ERR_NAME_NOT_RESOLVED"):
        capture.capture("https://s3.tradingview.com/chart/")

    assert capture.driver is driver
    assert browser_pids(browser_tag) == browsers


def test_a_browser_that_does_not_start_is_a_temporary_error(site, make_capture, settings):
    settings.CHROMEDRIVER_PATH = "/bin/false"  # an executable that exits at once

    with pytest.raises(ChartTemporaryError, match="Chromium did not start"):
        make_capture().capture(site.url("/chart"))


@pytest.mark.parametrize("path", ["/blank", "/slow"])
def test_a_page_without_a_chart_in_time_is_a_temporary_error(site, make_capture, path):
    capture = make_capture(timeout=SHORT_TIMEOUT)
    started = time.monotonic()

    with pytest.raises(ChartTemporaryError, match="showed no 'canvas' within 3 s"):
        capture.capture(site.url(path))

    assert time.monotonic() - started < GIVING_UP_SECONDS


def test_waits_for_the_selector_it_was_given(site, make_capture):
    capture = make_capture(selector="canvas.chart-ready", timeout=SHORT_TIMEOUT)

    with pytest.raises(ChartTemporaryError, match=r"'canvas\.chart-ready'"):
        capture.capture(site.url("/chart"))


def test_a_hung_page_does_not_spoil_the_next_capture(site, make_capture):
    capture = make_capture(timeout=SHORT_TIMEOUT)
    with pytest.raises(ChartTemporaryError):
        capture.capture(site.url("/hung"))

    # The stuck renderer would time out every later navigation; a new browser does not.
    assert image(capture.capture(site.url("/chart"))).getpixel((640, 360)) == MARK


FINDING_1 = "http://127.0.0.1:18999\\@www.tradingview.com/internal-admin"  # issue 15: the SSRF


@pytest.mark.parametrize(
    "url",
    [
        FINDING_1,
        "https://127.0.0.1:18999\\@www.tradingview.com/internal-admin",
        "http://169.254.169.254\\@www.tradingview.com/latest/meta-data/",
        "http://www.tradingview.com/chart/",
        "https://www.tradingview.com:8443/chart/",
        "https://user:pass@www.tradingview.com/chart/",
        "https://www.tradingview.com@127.0.0.1/chart/",
        "https://www.tradingview.com.evil.test/chart/",
        "https://eviltradingview.com/chart/",
        "https://www.tradingview.com./chart/",
        "https://127.0.0.1/",
        "https://[::1]/",
        "https://www.trading view.com/",
        "https://www.tradingview.com/\tchart",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "data:text/html,<canvas>",
        "/chart",
        "https://",
    ],
)
def test_only_tradingview_pages_over_https_are_captured(make_capture, browser_tag, url):
    capture = make_capture()

    with pytest.raises(ChartError, match="the chart URL is refused") as raised:
        capture.capture(url)

    assert not isinstance(raised.value, ChartTemporaryError)  # a setting to change, not a retry
    assert capture.driver is None
    assert not tagged_processes(browser_tag)


@pytest.fixture
def inside():
    """A server on our side of the network, which no chart page may reach: it counts its requests."""
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<canvas></canvas> internal admin")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.hits = hits
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("how", ["redirect", "leave"])
@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "169.254.169.254", "internal.test:{port}"])
def test_a_chart_page_that_sends_the_browser_inside_captures_nothing_and_reaches_nothing(
    site, make_capture, inside, how, host
):
    target = f"http://{host.format(port=inside.server_port)}/internal-admin"
    capture = make_capture(timeout=SHORT_TIMEOUT)

    with pytest.raises(ChartError):
        capture.capture(site.url(f"/{how}?{urlencode({'to': target})}"))

    assert inside.hits == []
    # The browser is still good for the next bot's chart.
    assert image(capture.capture(site.url("/chart"))).getpixel((640, 360)) == MARK


def test_the_capture_resolves_only_tradingview_in_every_environment(settings):
    arguments = TradingViewCapture().options().arguments

    assert (
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE tradingview.com , EXCLUDE *.tradingview.com"
        in arguments
    )
    assert not any("ignore-certificate-errors" in argument for argument in arguments)


def test_a_capture_waits_for_the_browser_no_longer_than_its_timeout(make_capture):
    capture = make_capture(timeout=1)
    capture._lock.acquire()  # another bot's capture holds the browser
    try:
        started = time.monotonic()
        with pytest.raises(ChartTemporaryError, match="stayed busy for 1 s"):
            capture.capture("https://www.tradingview.com/chart/")
        assert time.monotonic() - started < 3
    finally:
        capture._lock.release()


@pytest.mark.parametrize("setting", ["CHROMIUM_BINARY", "CHROMEDRIVER_PATH"])
def test_a_missing_executable_needs_a_human(site, make_capture, settings, setting):
    setattr(settings, setting, "/nonexistent/chromium")

    with pytest.raises(ChartError, match="/nonexistent/chromium is not an executable") as raised:
        make_capture().capture(site.url("/chart"))

    assert not isinstance(raised.value, ChartTemporaryError)


def test_one_shared_capture_per_process_started_on_first_use():
    found = []
    threads = [threading.Thread(target=lambda: found.append(shared_capture())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({id(capture) for capture in found}) == 1
    assert isinstance(found[0], TradingViewCapture)
    assert found[0].driver is None


def test_a_forked_worker_gets_its_own_shared_capture():
    parents = shared_capture()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running pytest's exit code
        child = shared_capture()
        os.write(write, b"own" if child is not parents and child is shared_capture() else b"parent's")
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)

    assert os.read(read, 10) == b"own"
    assert shared_capture() is parents
