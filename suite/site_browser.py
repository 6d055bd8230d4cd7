"""A headless system Chromium for the HTML leaderboard: screenshots for docs/ and the browser tests.

``python -m suite.site_browser RESULTS --out docs/leaderboard-site`` renders the site of a results directory (the
same as ``leaderboard RESULTS --html``) and writes one full-page PNG per page. It drives Debian's ``chromium`` through
``chromedriver`` with selenium (the ``dev`` extra), pointed at the installed driver so that selenium-manager never
tries to download a browser (this machine, like CI, cannot).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from suite.errors import SuiteError

MAX_HEIGHT = 6000  # px: a full-page screenshot taller than this is cut (a very long table)


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) executables, or None when either is not installed."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or next(
        (p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if Path(p).exists()), None)
    return (chromium, driver) if chromium and driver else None


def headless_chrome(width: int = 1400, height: int = 1000) -> Any:
    """A selenium Chrome driver on the system Chromium, headless, with the browser console log captured."""
    found = find_browser()
    if found is None:
        raise SuiteError("no Chromium found: install it with `apt-get install chromium chromium-driver`")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise SuiteError("selenium is not installed: pip install -e '.[dev]'") from None
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-extensions", f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=found[1]), options=options)


def screenshot_pages(pages: Sequence[Path], out_dir: Path, width: int = 1400) -> list[Path]:
    """One full-page PNG per HTML page (``out_dir/<page stem>.png``); fails on any browser console message."""
    out_dir.mkdir(parents=True, exist_ok=True)
    driver = headless_chrome(width)
    written = []
    try:
        for page in pages:
            driver.set_window_size(width, 1000)
            driver.get(page.resolve().as_uri())
            logs = driver.get_log("browser")
            if logs:
                raise SuiteError(f"{page}: browser console: {logs[0].get('message')}")
            # Wide tables scroll inside their box on screen; let them spread so the screenshot shows every column.
            driver.execute_script("document.querySelectorAll('.scroll').forEach(function (d) {"
                                  " d.style.overflow = 'visible'; });")
            wide = driver.execute_script("return document.documentElement.scrollWidth")
            driver.set_window_size(max(width, int(wide)), 1000)
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(max(width, int(wide)), min(int(height) + 20, MAX_HEIGHT))
            path = out_dir / f"{page.stem}.png"
            driver.save_screenshot(str(path))
            written.append(path)
    finally:
        driver.quit()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m suite.site_browser", description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="results directory (records/ and leaderboard/ plots)")
    parser.add_argument("--out", type=Path, default=Path("docs/leaderboard-site"), help="where the PNGs go")
    parser.add_argument("--references", type=Path, default=None)
    args = parser.parse_args(argv)
    from suite.report import write_leaderboard
    from suite.site import write_site

    try:
        with tempfile.TemporaryDirectory() as tmp:
            write_leaderboard(args.results, Path(tmp) / "board", args.references)
            pages, _ = write_site(args.results, Path(tmp) / "html", args.references, Path(tmp) / "board")
            for path in screenshot_pages(pages, args.out):
                print(path)
    except SuiteError as err:
        print(f"error: {err}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
