"""Static files that ship inside installed Python packages, found where pip put them.

The plots use plotly.js; the `plotly` wheel carries its minified build, so it comes with `pip install` and
no CDN or npm step is needed. The live parts of the pages use htmx, whose minified build the
`django-js-lib-htmx` wheel carries (its app need not be installed: only the file is taken). Only the files
named here are served (the wheels also hold datasets, a widget bundle and htmx's extensions, which no page
uses)."""

import importlib.util
import re
from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.contrib.staticfiles.utils import matches_patterns
from django.core.checks import Error
from django.core.files.storage import FileSystemStorage

# static path → (package, file inside the package)
PACKAGE_FILES = {
    "vendor/plotly.min.js": ("plotly", "package_data/plotly.min.js"),
    "vendor/htmx.min.js": ("js_lib_htmx", "static/htmx/htmx.min.js"),
}


def _package_file(package: str, name: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / name
    return path if path.is_file() else None


class PackageFileFinder(BaseFinder):
    def check(self, **kwargs):
        return [
            Error(
                f"{package} does not ship {name}", hint="pip install -r requirements.txt", id="tradingai.E001"
            )
            for package, name in PACKAGE_FILES.values()
            if _package_file(package, name) is None
        ]

    def find(self, path, find_all=False, **kwargs):
        find_all = find_all or kwargs.get("all", False)  # Django 5.2 still passes the old name sometimes
        found = None
        if path in PACKAGE_FILES:
            found = _package_file(*PACKAGE_FILES[path])
        if found is None:
            return [] if find_all else None
        return [str(found)] if find_all else str(found)

    def list(self, ignore_patterns):
        for path, (package, name) in PACKAGE_FILES.items():
            found = _package_file(package, name)
            if found is None or matches_patterns(path, ignore_patterns):
                continue
            storage = FileSystemStorage(location=str(found.parent))
            # collectstatic stores a file under the storage's `prefix` + the listed name.
            storage.prefix = str(Path(path).parent)
            yield found.name, storage


# plotly.js adds its style rules to a <style> element of its own unless an element with this id and class is
# in the page: a page under a Content-Security-Policy without 'unsafe-inline' links them instead, from
# static/css/plotly.css, which `plotly_css()` writes from the plotly.js the wheel ships (a test keeps the two
# equal when plotly is upgraded).
PLOTLY_STYLE_ID = "plotly.js-style-global"
_RULE = re.compile(r'"((?:[^"\\]|\\.)*)":(?:\'((?:[^\'\\]|\\.)*)\'|"((?:[^"\\]|\\.)*)")')


def plotly_css() -> str:
    """The global style rules of the shipped plotly.js, as the stylesheet it would build: each rule inserted
    at the top (insertRule(rule, 0)), so in reverse order."""
    script = _package_file(*PACKAGE_FILES["vendor/plotly.min.js"]).read_text()
    version = re.search(r"plotly\.js v([\d.]+)", script).group(1)
    loop = re.search(r"for\((\w+) in (\w+)\)\w+=\1\.replace\(/\^,/", script)
    start = script.rindex(f"{loop.group(2)}={{", 0, loop.start())
    rules = [
        (selector.replace(",", " ,", 1) if selector.startswith(",") else selector, single or double)
        for selector, single, double in _RULE.findall(script[start : loop.start()])
    ]
    lines = [
        selector.replace("X", ".js-plotly-plot .plotly").replace("Y", ".plotly-notifier") + "{" + body + "}"
        for selector, body in reversed(rules)
    ]
    return (
        f"/* plotly.js v{version}'s own style rules (tradingai.staticfinders.plotly_css) */\n"
        + "\n".join(lines)
        + "\n"
    )
