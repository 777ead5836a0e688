"""Issue 15, finding 12: every response carries a Content-Security-Policy that allows no inline script (and
no page has one), a Permissions-Policy that switches off what no page uses, API responses are never
stored by a cache, and the schema and Swagger UI are behind login unless API_DOCS_PUBLIC is on."""

import contextlib
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import NoReverseMatch, get_resolver, reverse

from automation.management.commands.screenshots import LOGGED_OUT, main_pages
from tests.api.conftest import api, client_of, objects  # noqa: F401  (alice's token client, one of each object)
from tradingai.staticfinders import plotly_css

POLICY = {
    "default-src": "'self'", "script-src": "'self'", "style-src": "'self'", "img-src": "'self' data:",
    "font-src": "'self'", "connect-src": "'self'", "object-src": "'none'", "base-uri": "'none'",
    "form-action": "'self'", "frame-ancestors": "'none'",
}  # fmt: skip
FEATURES_OFF = ("camera", "microphone", "geolocation", "payment", "usb")
# A <script> that is not a file (src) nor data (json_script's type), or an on* event handler attribute.
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\b(src|type=\"application/json\")=)[^>]*>|\son[a-z]+\s*=", re.I)


def assert_headers(response, where):
    directives = (d.strip().split(" ", 1) for d in response["Content-Security-Policy"].split(";"))
    assert dict(directives) == POLICY, where
    features = dict(re.findall(r"([a-z-]+)=\(([^)]*)\)", response["Permissions-Policy"]))
    assert all(features.get(name) == "" for name in FEATURES_OFF), (where, response["Permissions-Policy"])


@pytest.fixture
def pages(alice, objects):  # noqa: F811
    """Every main page of the site, with alice's objects to show (as the screenshots command walks them)."""
    return main_pages(alice)[0]


def test_every_page_carries_the_headers_and_has_no_inline_script(client, alice, pages, admin_user):
    signed_in = Client()
    signed_in.force_login(alice)
    for name, path in pages:
        response = (client if name in LOGGED_OUT else signed_in).get(path)
        assert response.status_code == 200, name
        assert_headers(response, name)
        html = response.content.decode()
        assert not INLINE_SCRIPT.search(html), (name, INLINE_SCRIPT.search(html).group(0))
        assert 'style="' not in html, name
    # Every other page a URL without arguments names (two-factor settings, sign-in code, done pages...).
    for path in argumentless_pages() - {path for _, path in pages}:
        response = signed_in.get(path)
        assert_headers(response, path)
        assert not INLINE_SCRIPT.search(response.content.decode()), path
    admin = Client()
    admin.force_login(admin_user)
    for path in ("/admin/", "/admin/automation/bot/", "/admin/login/", "/no-such-page/"):
        assert_headers(admin.get(path), path)


def argumentless_pages() -> set[str]:
    names = [name for name in get_resolver().reverse_dict if isinstance(name, str)]
    found = set()
    for name in names:
        with contextlib.suppress(NoReverseMatch):
            found.add(reverse(name))
    return {path for path in found if not path.startswith(("/api/", "/admin/"))} - {reverse("logout")}


def test_api_responses_carry_the_headers_and_are_never_stored(api, objects):  # noqa: F811
    for path in [
        "/api/v1/bots/",
        f"/api/v1/bots/{objects['bots']}/",
        "/api/v1/insights/",
        "/api/v1/nothing/",
    ]:
        response = api.get(path)
        assert_headers(response, path)
        directives = {d.strip() for d in response["Cache-Control"].split(",")}
        assert {"no-store", "private"} <= directives, (path, response["Cache-Control"])
    token = Client().post(
        "/api/v1/auth/token/", {"email": "x@example.com", "password": "x"}, content_type="application/json"
    )
    assert "no-store" in token["Cache-Control"]


def test_the_schema_and_swagger_ui_are_behind_login_unless_public(settings, client, alice):
    settings.API_DOCS_PUBLIC = False  # production's default
    assert client.get("/api/schema/").status_code == 401
    docs = client.get("/api/docs/")
    assert docs.status_code == 302 and docs["Location"].startswith("/accounts/login/?next=/api/docs/")
    assert client.get("/api/docs/", {"script": ""}).status_code == 302

    assert client_of(alice).get("/api/schema/", {"format": "json"}).json()["info"]["title"] == "TradingAI API"
    client.force_login(alice)
    page = client.get("/api/docs/")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.content.decode()
    assert not INLINE_SCRIPT.search(page.content.decode())  # its start-up script is a file (?script=)
    assert client.get("/api/docs/", {"script": ""})["Content-Type"].startswith("application/javascript")
    assert client.get("/api/schema/").status_code == 200

    settings.API_DOCS_PUBLIC = True  # `make run`'s default
    assert Client().get("/api/schema/").status_code == 200
    assert Client().get("/api/docs/").status_code == 200


def test_the_plot_pages_give_plotly_js_what_it_would_inject():
    # Upgrading plotly changes its rules or the map stylesheet's id: the browser test would then see a refused
    # <style>; this says what to do (python -c "...plotly_css()" > static/css/plotly.css, and the id).
    assert (settings.BASE_DIR / "static/css/plotly.css").read_text() == plotly_css()
    shipped = (settings.BASE_DIR / "templates/_plot_scripts.html").read_text()
    script = Path(finders.find("vendor/plotly.min.js")).read_text()
    style_ids = re.findall(
        r'getElementById\("([0-9a-f]{64})"\)\)\{var e=document\.createElement\("style"\)', script
    )
    assert style_ids and all(f'id="{style_id}"' in shipped for style_id in style_ids)
