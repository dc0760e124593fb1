"""Screenshots of the teaching app's main views for the README (figures/app_*.png).

    python tools/app_screenshots.py

Starts the app's server in this process and photographs the page in headless Chromium
(the system's, through Playwright) at 1280 x 900 px: the opening lesson, the lesson on
injection intervals with its sources open, and a mistyped regimen with its error.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def main() -> int:
    browser_path = next((p for n in BROWSERS if (p := shutil.which(n))), None)
    if browser_path is None:
        print("no Chromium on this machine (Debian: apt-get install chromium)", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    from b12pk.app.server import start_in_thread

    url, stop = start_in_thread()
    out = ROOT / "figures"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=[
            "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--hide-scrollbars"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})

        def settle(n: int) -> None:
            page.wait_for_selector(f'body[data-updates="{n}"]', state="attached",
                                   timeout=120_000)
            page.wait_for_timeout(400)

        page.goto(url)
        settle(1)
        page.screenshot(path=out / "app_main.png", full_page=True)
        page.get_by_role("button", name="Monthly, or every 2-3 months?").click()
        settle(2)
        page.click("#lesson summary")
        page.wait_for_timeout(300)
        page.screenshot(path=out / "app_lesson.png")
        page.fill("#regimen-3", "1000 mcg cyanocobalamin IM every 2 monhts")
        settle(3)
        page.screenshot(path=out / "app_error.png")
        browser.close()
    stop()
    for name in ("app_main", "app_lesson", "app_error"):
        print(out / f"{name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
