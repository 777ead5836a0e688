"""Headless Chromium for looking at our own pages: the `screenshots` command and the browser tests.

It is the browser of the TradingView capture (`automation.charts.tradingview`), started with the same
switches and kept off the internet the same way. Its scrollbars stay hidden, as there, so the page gets the
whole width asked for: at 390 px that is what a phone does, whose scrollbars float over the page; at
1280 px it is what overlay scrollbars do (macOS), while a desktop with classic scrollbars would leave the
page 15 px less. Showing them would not make the 1280 px check stricter for free: a full-page capture drops
a classic scrollbar and lays the page out 15 px wider than it was measured, cutting off its right edge.
The overflow is measured against the page's own width (`clientWidth`), right with or without them."""

import base64
import os

from django.conf import settings
from django.test import Client
from django.urls import reverse
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from .charts.tradingview import CHROMIUM_ARGS, OFFLINE_ARGS, POLL_SECONDS

# Narrower viewports are shown as a phone shows them: the page's viewport meta tag applies, touch is on.
PHONE_WIDTH = 600

# What sticks out past the right edge of the page, as "tag#id.class > ... (right edge in px)": each
# element whose box does while its parent's does not (the parent would be the one to name), and each
# element whose text does (a long word, number or URL that cannot wrap). Not what a box that scrolls or
# clips (a .table-wrap) holds in.
OVERFLOWING_ELEMENTS_JS = """
const edge = document.documentElement.clientWidth + 0.5;
const clipped = (node) => {
  for (let up = node.parentElement; up && up !== document.body; up = up.parentElement) {
    if (getComputedStyle(up).overflowX !== "visible") return true;
  }
  return false;
};
const found = new Map();
for (const el of document.querySelectorAll("body, body *")) {
  const right = el.getBoundingClientRect().right;
  if (right > edge && el.parentElement.getBoundingClientRect().right <= edge && !clipped(el)) {
    found.set(el, right);
  }
}
const texts = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let text = texts.nextNode(); text; text = texts.nextNode()) {
  const range = document.createRange();
  range.selectNodeContents(text);
  const right = range.getBoundingClientRect().right;
  const el = text.parentElement;
  if (right > edge && !clipped(text) && ![...found.keys()].some((box) => box.contains(el))) {
    found.set(el, Math.max(right, found.get(el) || 0));
  }
}
const name = (el) =>
  el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + [...el.classList].map((c) => "." + c).join("");
return [...found].map(([el, right]) => {
  const path = [];
  for (let up = el; up !== document.documentElement; up = up.parentElement) path.unshift(name(up));
  return `${path.join(" > ")} (right edge ${Math.round(right)} px)`;
});
"""


def chromium(width: int, height: int = 900) -> webdriver.Chrome:
    """A new headless Chromium whose viewport is `width` by `height` CSS pixels. The caller quits it."""
    os.environ["SE_OFFLINE"] = "true"  # else Selenium Manager tries to download a driver or a browser
    options = webdriver.ChromeOptions()
    options.binary_location = settings.CHROMIUM_BINARY
    for arg in (*CHROMIUM_ARGS, *OFFLINE_ARGS):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # for csp_violations()
    driver = webdriver.Chrome(options=options, service=Service(settings.CHROMEDRIVER_PATH))
    # The window size would include the browser's frame and clip the page; this sets the page's own.
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < PHONE_WIDTH},
    )
    return driver


def log_in(driver: webdriver.Chrome, base_url: str, user) -> None:
    """Log the browser in as `user` without knowing the password: a session made here, its cookie handed
    to the browser."""
    client = Client()
    client.force_login(user)
    # A browser takes a cookie only from the site it is on.
    driver.get(base_url + reverse("login"))
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    driver.add_cookie({"name": cookie.key, "value": cookie.value, "path": "/"})


def csp_violations(driver: webdriver.Chrome) -> list[str]:
    """What the Content-Security-Policy refused since the last call, as Chromium reported it in the console
    ("Refused to execute inline script because it violates the following Content Security Policy
    directive: ..."). Reading the log empties it."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if "Content Security Policy" in entry["message"]
    ]


def horizontal_overflow(driver: webdriver.Chrome) -> int:
    """How many CSS pixels the page is wider than the viewport, 0 when it fits. A box that scrolls on its
    own (a .table-wrap) does not widen the page, so its content does not count."""
    # clientWidth, not innerWidth: when a page is too wide for a phone's viewport, Chrome widens innerWidth
    # to the page, which would hide the very overflow measured here.
    return driver.execute_script(
        "const root = document.documentElement; return Math.max(root.scrollWidth - root.clientWidth, 0);"
    )


def overflowing_elements(driver: webdriver.Chrome) -> list[str]:
    """The elements that make the page too wide, outermost first, to say what to fix."""
    return driver.execute_script(OVERFLOWING_ELEMENTS_JS)


def full_page_png(driver: webdriver.Chrome) -> bytes:
    """PNG of the whole page, not only the viewport: as wide and as tall as the document."""
    width, height = driver.execute_script(
        "const root = document.documentElement; return [root.scrollWidth, root.scrollHeight];"
    )
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    return base64.b64decode(shot["data"])


def wait_for_plots(driver: webdriver.Chrome, timeout: float) -> None:
    """Wait until every plot of the page (`[data-plot]`, `[data-price-chart]`) is marked `data-rendered`,
    as static/js/plots.js and price_chart.js do once Plotly has drawn it. A page without plots returns at
    once."""
    waiting = "[data-plot]:not([data-rendered]), [data-price-chart]:not([data-rendered])"
    WebDriverWait(driver, timeout, poll_frequency=POLL_SECONDS).until(
        lambda d: d.execute_script(f"return document.querySelectorAll('{waiting}').length === 0;"),
        f"plots not drawn within {timeout:g} s on {driver.current_url}",
    )
