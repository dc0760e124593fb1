"""The rendered report in a real headless browser (Chromium): the first screen holds the
headline figure and the at-a-glance table, and nothing scrolls sideways at 1280 px.

Needs Chromium (Debian: ``apt-get install chromium``; ``.ci/run`` installs it where it can);
skipped with the reason where the machine has none.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest


WIDTH, HEIGHT = 1280, 900
"""The window: a common laptop screen (px)."""

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: Measures the page once it has loaded and writes the numbers into the DOM, which
#: ``--dump-dom`` then prints.
PROBE = """<script>
window.addEventListener("load", () => {
  const d = document.documentElement;
  const box = (el) => { const r = el.getBoundingClientRect();
                        return {top: r.top + window.scrollY, bottom: r.bottom + window.scrollY,
                                right: r.right}; };
  const first = document.querySelector("h2");
  const out = {scroll_width: d.scrollWidth, client_width: d.clientWidth,
               first_section: first ? first.textContent : null,
               figure: box(document.querySelector("figure img")),
               table: box(document.querySelector("table")),
               // a wide table scrolls inside its box (div.table): its cells do not count
               widest: Math.max(...[...document.querySelectorAll("body *")]
                                .filter((e) => !e.parentElement.closest(".table"))
                                .map((e) => e.getBoundingClientRect().right))};
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


pytestmark = pytest.mark.skipif(
    _browser() is None,
    reason="no Chromium on this machine (Debian: apt-get install chromium)")


@pytest.fixture(scope="module")
def layout(tmp_path_factory, default_report):
    """The default report (``b12pk compare``), measured in Chromium at 1280 x 900 px."""
    root = tmp_path_factory.mktemp("browser")
    out = default_report
    page = root / "probe.html"
    text = (out / "report.html").read_text(encoding="utf-8")
    page.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    run = subprocess.run(
        [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", f"--user-data-dir={root / 'profile'}",
         f"--window-size={WIDTH},{HEIGHT}", "--virtual-time-budget=10000", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert found, f"the page did not report its layout: {run.stderr[-500:]}"
    return json.loads(found.group(1).replace("&quot;", '"'))


def test_report_opens_with_the_glance_section(layout):
    assert layout["first_section"] == "At a glance"


def test_headline_figure_fits_the_first_screen(layout):
    assert layout["figure"]["bottom"] <= HEIGHT
    assert layout["figure"]["right"] <= WIDTH


def test_glance_table_starts_on_the_first_screen(layout):
    assert layout["table"]["top"] < HEIGHT
    assert layout["table"]["right"] <= WIDTH


def test_nothing_scrolls_sideways_at_1280_px(layout):
    assert layout["scroll_width"] <= layout["client_width"]
    assert layout["widest"] <= WIDTH
