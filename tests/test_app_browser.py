"""The teaching app in a real headless browser: Chromium from the system's packages, driven
by Playwright (``pip install '.[test]'`` brings Playwright; it uses the system's Chromium,
never a downloaded one).

Skipped, with the reason, where no Chromium or no Playwright exists; ``.ci/run`` installs
Chromium where it can (Debian: ``apt-get install chromium``), so CI runs these tests.

The page's script marks each finished update on ``<body data-updates="N">``; tests wait on
that attribute with CSS selectors, which work under the page's Content-Security-Policy
(a string predicate evaluated in the page would be refused, as it should be).
"""

from __future__ import annotations

import csv
import io
import shutil

import pytest

pytest.importorskip("starlette", reason="the app needs b12pk[app]")
pytest.importorskip("uvicorn", reason="the app needs b12pk[app]")
pytest.importorskip("plotly", reason="the app needs b12pk[app]")
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="Playwright is not installed (pip install '.[test]')")

import b12pk  # noqa: E402
from b12pk.app.lessons import lessons  # noqa: E402
from b12pk.app.server import start_in_thread  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((path for name in BROWSERS if (path := shutil.which(name))), None)

pytestmark = [pytest.mark.skipif(BROWSER is None, reason="no Chromium on this machine "
                                 "(Debian: apt-get install chromium)"),
              pytest.mark.slow]

#: Flags for a closed network (no background connections to Google's hosts).
ARGS = ["--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-quic"]


@pytest.fixture(scope="module")
def server():
    url, stop = start_in_thread()
    yield url
    stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=BROWSER, args=ARGS)
        yield b
        b.close()


class Page:
    """A fresh page of the app with what it logged and requested."""

    def __init__(self, browser, url):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900},
                                           accept_downloads=True)
        self.page = self.context.new_page()
        self.errors, self.requests = [], []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.url = url
        self.page.goto(url)
        self.wait(1)

    def updates(self) -> int:
        return int(self.page.get_attribute("body", "data-updates") or 0)

    def wait(self, n: int) -> None:
        self.page.wait_for_selector(f'body[data-updates="{n}"]', state="attached",
                                    timeout=60_000)

    def change(self, action) -> None:
        """Do ``action`` and wait for the update it causes."""
        before = self.updates()
        action()
        self.wait(before + 1)

    def legend(self) -> list[str]:
        return self.page.locator("#plot .legendtext").all_text_contents()

    def rows(self) -> list[list[str]]:
        return [r.locator("td").all_text_contents()
                for r in self.page.locator("#summary tbody tr").all()]


@pytest.fixture()
def app(browser, server):
    page = Page(browser, server)
    yield page
    page.context.close()


def test_page_loads_with_no_console_errors(app):
    assert app.errors == []
    assert app.page.get_attribute("body", "data-ready") == "true"


def test_page_requests_nothing_from_elsewhere(app):
    app.change(lambda: app.page.fill("#regimen-3", "500 mcg cyanocobalamin oral daily"))
    assert app.requests and all(u.startswith(app.url) for u in app.requests), app.requests


def test_disclaimer_is_on_the_page(app):
    assert b12pk.DISCLAIMER in app.page.text_content("header")
    assert b12pk.DISCLAIMER in app.page.text_content("footer")


def test_first_lesson_is_shown_on_opening(app):
    first = lessons()[0]
    assert app.page.text_content("#lesson-title") == first.title
    assert len(app.legend()) == len(first.regimens)


def test_typing_a_regimen_updates_the_curve_and_the_table(app):
    text = "500 mcg cyanocobalamin oral daily"
    app.change(lambda: app.page.fill("#regimen-3", text))
    assert f"D: {text}" in app.legend()
    assert [r[0] for r in app.rows()][-1] == f"D: {text}"
    assert app.errors == []


def test_bad_regimen_shows_its_error_and_the_page_goes_on(app):
    n = len(app.legend())
    app.change(lambda: app.page.fill("#regimen-3", "1000 mcg cyanocobalamin IM monhtly"))
    error = app.page.text_content("#regimen-3-error")
    assert "monhtly" in error and "did you mean" in error
    assert app.page.get_attribute("#regimen-3", "aria-invalid") == "true"
    assert len(app.legend()) == n  # the other regimens are still drawn
    app.change(lambda: app.page.fill("#regimen-3", "1000 mcg cyanocobalamin IM monthly"))
    assert app.page.text_content("#regimen-3-error") == ""
    assert len(app.legend()) == n + 1
    assert app.errors == []


def test_bad_patient_setting_shows_its_error(app):
    app.change(lambda: app.page.fill("#egfr", "900"))
    assert "egfr" in app.page.text_content("#patient-error").lower()
    app.change(lambda: app.page.fill("#egfr", "60"))
    assert app.page.text_content("#patient-error") == ""
    assert len(app.legend()) == len(lessons()[0].regimens)


def test_a_lesson_loads_its_scenario(app):
    lesson = next(x for x in lessons() if x.id == "interval")
    app.change(lambda: app.page.get_by_role("button", name=lesson.title).click())
    assert app.page.text_content("#lesson-title") == lesson.title
    assert [app.page.input_value(f"#regimen-{i}") for i in range(len(lesson.regimens))] \
        == list(lesson.regimens)
    assert app.page.input_value("#regimen-3") == ""
    assert app.page.input_value("#days") == "730"
    assert app.page.input_value("#preset") == lesson.patient["preset"]
    assert len(app.legend()) == len(lesson.regimens)
    assert app.page.text_content("#lesson-sources").count("source article:") == \
        len(lesson.sources)


def _download(app, button: str):
    with app.page.expect_download() as info:
        app.page.click(button)
    return info.value


def test_csv_download_holds_what_the_page_shows(app):
    shown = app.legend()
    first = app.rows()[0]
    data = open(_download(app, "#dl-csv").path(), encoding="utf-8").read()
    rows = list(csv.DictReader(io.StringIO(
        "".join(line for line in data.splitlines(keepends=True) if not line.startswith("#")))))
    assert list(dict.fromkeys(r["regimen"] for r in rows)) == shown
    # the table's stores at the end agree with the file's last stores value
    last = [r for r in rows if r["regimen"] == first[0]][-1]
    assert f"{float(last['stores_ug']):,.0f}" == first[-2]


def test_figure_downloads_name_the_regimens_shown(app):
    svg = open(_download(app, "#dl-svg").path(), encoding="utf-8").read()
    for label in app.legend():
        assert label in svg
    png = open(_download(app, "#dl-png").path(), "rb").read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_uncertainty_band_is_drawn_when_asked(app):
    def count_bands():
        return app.page.locator("#plot .scatterlayer .trace .fills path").count()

    before = count_bands()
    app.change(lambda: app.page.check("#uncertainty"))
    assert count_bands() > before
    assert app.errors == []


def test_an_update_is_quick(app):
    """Measured from the change to the drawn curve; the issue asks for 300 ms on 2 cores,
    which benchmarks/bench_app.py measures alone. Here, under a parallel test suite, only
    a generous bound is checked."""
    app.change(lambda: app.page.fill("#regimen-3", "250 mcg cyanocobalamin oral daily"))
    assert int(app.page.get_attribute("body", "data-last-update-ms")) < 5000


def test_an_example_goes_into_the_first_empty_slot(app):
    example = app.page.locator("#examples option").nth(1).get_attribute("value")
    app.change(lambda: app.page.select_option("#examples", example))
    assert app.page.input_value("#regimen-3") == example
    assert app.legend()[-1] == f"D: {example}"


def test_model_warnings_are_shown_on_the_page(app):
    app.change(lambda: app.page.fill("#baseline", "5000"))
    assert "storage capacity" in app.page.text_content("#warnings")
    app.change(lambda: app.page.fill("#baseline", "110"))
    assert app.page.text_content("#warnings") == ""


def test_the_box_typed_in_says_how_its_regimen_was_read(app):
    app.change(lambda: app.page.fill("#regimen-3", "1 mg IM every 3 months"))
    assert app.page.text_content("#regimen-3-read") == \
        "read as: 1000 mcg cyanocobalamin IM every 3 months indefinitely"
    assert app.page.text_content("#regimen-0-read") == ""
