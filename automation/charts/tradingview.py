"""A chart as a trader sees it on TradingView: a screenshot of the chart page taken by headless Chromium.

Starting Chromium costs about a second, so each process keeps one browser (`shared_capture()`) and reuses
it, replacing it when it dies. Loading and rendering a page are bounded by the capture timeout, and so is
the wait for the browser while another bot's capture holds it.

The URL is the bot owner's, so the browser is kept to TradingView three times over (docs/security.md):
the URL is checked as the browser reads it (`urls.checked_tradingview_url`), Chromium resolves no host name
but TradingView's (`CHART_CAPTURE_HOST_RULES`; IP literals fail too), and a page that ends up anywhere else
is not photographed."""

import atexit
import logging
import os
import struct
import threading
import time
from collections.abc import Sequence

import urllib3
from django.conf import settings
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from .errors import ChartError, ChartTemporaryError
from .urls import UnsafeChartUrlError, checked_tradingview_url

logger = logging.getLogger(__name__)

CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-features=NetworkTimeServiceQuerying",
    # chromedriver talks to Chromium over a pipe instead of a port, so a killed chromedriver takes its
    # Chromium with it rather than leaving it running, orphaned. (The cost: chromedriver notices a Chromium
    # that exits while starting only after its own 60 s.)
    "--remote-debugging-pipe",
    "--hide-scrollbars",  # they would cover the chart's right and bottom edges
)
# Blocks every host name but the local one: our own pages in the browser tests and `screenshots` must
# never reach the internet.
OFFLINE_ARGS = ("--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# How often to look for the chart's element: each look is a round trip to chromedriver, and looking less
# often adds up to this much to every capture.
POLL_SECONDS = 0.05

# A crashed Chromium answers with a WebDriverException; a dead chromedriver with a refused connection.
BROWSER_FAILURES = (WebDriverException, urllib3.exceptions.HTTPError)


class TradingViewCapture:
    """One headless Chromium, started on the first capture and reused; captures are serialised because the
    browser has one tab."""

    def __init__(
        self,
        *,
        selector: str = "canvas",
        timeout: float | None = None,
        host_rules: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.selector = selector  # the element whose presence means the chart has rendered
        self.timeout = settings.CHART_CAPTURE_TIMEOUT_SECONDS if timeout is None else timeout
        self.host_rules = settings.CHART_CAPTURE_HOST_RULES if host_rules is None else host_rules
        self.extra_args = tuple(extra_args)
        self.width, self.height = settings.CHART_WIDTH, settings.CHART_HEIGHT
        self.binary, self.driver_path = settings.CHROMIUM_BINARY, settings.CHROMEDRIVER_PATH
        self.driver: webdriver.Chrome | None = None
        self._lock = threading.Lock()

    def capture(self, url: str) -> bytes:
        """PNG bytes of the page's viewport, CHART_WIDTH by CHART_HEIGHT."""
        try:
            url = checked_tradingview_url(url)
        except UnsafeChartUrlError as e:  # stored before the check existed, or written past the form
            raise ChartError(f"the chart URL is refused: {e}") from e
        # One tab, one capture at a time; a bot waits for others' captures no longer than for its own page.
        if not self._lock.acquire(timeout=self.timeout):
            raise ChartTemporaryError(f"the chart browser stayed busy for {self.timeout:g} s")
        try:
            restarted = False
            while True:
                try:
                    return self._capture_once(url)
                except TimeoutException as e:  # before WebDriverException, its base class
                    # A renderer stuck in a script makes every later navigation time out as well, so the
                    # next capture gets a new browser.
                    self._discard()
                    raise ChartTemporaryError(
                        f"{url} showed no {self.selector!r} within {self.timeout:g} s"
                    ) from e
                except BROWSER_FAILURES as e:
                    if self._alive():
                        # The page failed (an unknown host, say), not the browser: keep it.
                        raise ChartTemporaryError(f"{url} did not load: {first_line(e)}") from e
                    self._discard()
                    if restarted:
                        raise ChartTemporaryError(
                            f"Chromium failed again after a restart: {first_line(e)}"
                        ) from e
                    logger.warning("Chromium failed, starting a new one: %s", e)
                    restarted = True
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            self._discard()

    def _capture_once(self, url: str) -> bytes:
        driver = self._running_driver()
        deadline = time.monotonic() + self.timeout
        driver.get(url)
        self._check_still_on_tradingview(driver)
        WebDriverWait(driver, max(deadline - time.monotonic(), 0), poll_frequency=POLL_SECONDS).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, self.selector))
        )
        png = driver.get_screenshot_as_png()
        self._check_still_on_tradingview(driver)  # a script may have navigated while the chart drew
        self._check_png(png)
        return png

    @staticmethod
    def _check_still_on_tradingview(driver: webdriver.Chrome) -> None:
        # A redirect or a script took the tab elsewhere; the host rules keep it from loading, and this keeps
        # whatever it shows (an error page, another site) from becoming the chart the analyst reads.
        try:
            checked_tradingview_url(driver.current_url)
        except UnsafeChartUrlError as e:
            raise ChartError("the chart page went to another site; nothing was captured") from e

    def _running_driver(self) -> webdriver.Chrome:
        if self.driver is not None and (exit_code := self.driver.service.process.poll()) is not None:
            logger.warning("chromedriver exited with %s, starting a new one", exit_code)
            self._discard()
        if self.driver is None:
            self._start()
        return self.driver

    def _alive(self) -> bool:
        if self.driver is None:
            return False
        try:
            self.driver.current_url  # noqa: B018 -- any command will do; this one is cheap
        except BROWSER_FAILURES:
            return False
        return True

    def options(self) -> webdriver.ChromeOptions:
        options = webdriver.ChromeOptions()
        options.binary_location = self.binary
        # Return at DOMContentLoaded: the chart's element is what we wait for, and a chart page's load event
        # also waits for its adverts and trackers.
        options.page_load_strategy = "eager"
        for arg in (*CHROMIUM_ARGS, f"--host-resolver-rules={self.host_rules}", *self.extra_args):
            options.add_argument(arg)
        return options

    def _start(self) -> None:
        for path in (self.binary, self.driver_path):
            if not os.access(path, os.X_OK):
                raise ChartError(
                    f"{path} is not an executable; see TRADINGAI_CHROMIUM_BINARY, TRADINGAI_CHROMEDRIVER_PATH"
                )
        os.environ["SE_OFFLINE"] = "true"  # else Selenium Manager tries to download a driver or a browser
        try:
            self.driver = webdriver.Chrome(options=self.options(), service=Service(self.driver_path))
        except BROWSER_FAILURES as e:
            # Not retried: what stopped it starting (memory, a broken install) is still there a moment later.
            raise ChartTemporaryError(f"Chromium did not start: {first_line(e)}") from e
        self.driver.set_page_load_timeout(self.timeout)
        self.driver.set_script_timeout(self.timeout)
        # The window size would include the browser's frame and clip the page; this sets the page's own.
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
        )

    def _discard(self) -> None:
        driver, self.driver = self.driver, None
        if driver is not None:
            driver.quit()  # never raises; stops chromedriver, which closes Chromium and removes its profile

    def _check_png(self, png: bytes) -> None:
        # The signature, then the IHDR chunk: length, type, width, height.
        if not png.startswith(PNG_SIGNATURE) or png[12:16] != b"IHDR":
            raise ChartError("the screenshot is not a PNG")
        width, height = struct.unpack(">II", png[16:24])
        if (width, height) != (self.width, self.height):
            raise ChartError(f"the screenshot is {width}x{height}, not {self.width}x{self.height}")


def first_line(error: Exception) -> str:
    # A WebDriverException's text goes on with the session's details and chromedriver's stack trace.
    return str(error).strip().split("\n", 1)[0]


_shared: TradingViewCapture | None = None
_shared_lock = threading.Lock()


def shared_capture() -> TradingViewCapture:
    """This process's capture. Its browser starts on the first capture and closes when the process exits."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = TradingViewCapture()
        return _shared


@atexit.register
def _close_shared() -> None:
    # Looked up at exit, not bound at creation: a forked worker closes its own browser, never its parent's.
    if _shared is not None:
        _shared.close()


def _forget_shared() -> None:
    # A forked child (Celery's prefork pool) inherits its parent's capture, whose browser it must not drive,
    # and perhaps a lock held by one of the parent's threads; it starts afresh.
    global _shared, _shared_lock
    _shared, _shared_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_shared)
