"""Headless Chromium for the browser tests: Debian's `chromium` driven by Playwright.

Playwright's own browser download is not reachable from CI, so the tests launch the system
binary that `.ci/run` installs (`apt-get install chromium`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium_page() -> Iterator:
    """A Playwright Page in headless Chromium; skips the test when chromium is not installed."""
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def export_html(notebook, path) -> str:
    """The notebook (an nbformat node) exported as nbconvert's HTML page, as a file:// URL."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(notebook)
    path.write_text(body, encoding="utf-8")
    return path.resolve().as_uri()


def open_offline(page, url: str) -> None:
    """Load a page without waiting for the CDN scripts nbconvert links (unreachable here)."""
    page.goto(url, wait_until="domcontentloaded")


def broken_images(page) -> list[str]:
    """Sources (cut short) of the <img> elements that did not decode into a picture."""
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    return page.eval_on_selector_all(
        "img", "imgs => imgs.filter(i => !i.naturalWidth).map(i => i.src.slice(0, 60))"
    )


def video_plays(page, seconds: float = 0.3, timeout_ms: int = 20_000) -> bool:
    """True once the page's first <video> has played past `seconds` (its time advances)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.wait_for_selector("video", state="attached")
    page.eval_on_selector("video", "v => { v.muted = true; return v.play(); }")
    try:
        page.wait_for_function(
            f"() => document.querySelector('video').currentTime > {seconds}", timeout=timeout_ms
        )
    except PlaywrightTimeout:
        return False
    return True
