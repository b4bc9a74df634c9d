"""A real headless Chromium (Debian's ``chromium``, driven by Playwright's Python package; no browser is
downloaded) loads productpage, signs in as jason through the login form, and sees reviews v2's black stars.

Screenshots are saved to ``.artifacts/e2e/`` at the repository root (git-ignored) for a person to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from examples.bookinfo_py.launcher import Bookinfo

from .conftest import need_program

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying to reach Google's hosts, which this
# machine's closed network refuses; as root it needs --no-sandbox.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_chromium_signs_in_as_jason_and_sees_black_stars(
    bookinfo: Bookinfo, tmp_path: Path, artifacts: Path
) -> None:
    executable = need_program("chromium", CHROMIUM)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is in the dev extra
        pytest.fail("playwright is not installed: pip install -e '.[dev]'")
    bookinfo.apply(["destination-rules.yaml", "route-all-v1.yaml", "jason-v2.yaml"])
    with sync_playwright() as p:
        # A persistent context is Playwright's way to pass a fresh --user-data-dir of our own.
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=executable,
            headless=True,
            args=FLAGS,
            viewport={"width": 1100, "height": 700},
        )
        try:
            page = context.new_page()
            page.goto(f"{bookinfo.base_url}/productpage")
            reviews = page.locator("#reviews")
            assert reviews.get_attribute("data-reviews-version") == "v1"
            assert page.locator(".stars").count() == 0
            page.screenshot(path=str(artifacts / "productpage-anonymous.png"), full_page=True)

            page.fill("input[name=username]", "jason")
            page.fill("input[name=passwd]", "jason")
            page.click("#login button[type=submit]")
            page.wait_for_selector("#user")
            assert page.locator("#user b").inner_text() == "jason"
            assert reviews.get_attribute("data-reviews-version") == "v2"
            stars = page.locator(".stars")
            assert stars.count() == 2
            assert {stars.nth(i).get_attribute("data-color") for i in range(2)} == {"black"}
            # What a person sees: the computed colour of the star glyphs.
            color = stars.first.evaluate("el => getComputedStyle(el).color")
            assert color == "rgb(0, 0, 0)"
            assert "★★★★★" in stars.first.inner_text()
            shot = artifacts / "productpage-jason.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000

            page.click("#logout")
            page.wait_for_selector("#login")
            assert reviews.get_attribute("data-reviews-version") == "v1"
        finally:
            context.close()
