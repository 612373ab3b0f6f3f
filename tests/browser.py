"""Headless Chromium for the browser tests: Debian's ``/usr/bin/chromium`` driven by Playwright.

Needs ``/usr/bin/chromium`` and the ``playwright`` package (``scripts/setup.sh`` installs both). Without them a
browser test skips, except under ``CI=true``, where it must run. Playwright never downloads a browser here.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def browser_or_skip() -> Any:
    """Playwright's ``sync_playwright``; skip (fail under ``CI=true``) when it or Chromium is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = [what for what, ok in (("the playwright package", sync_playwright is not None),
                                     (CHROMIUM, shutil.which(CHROMIUM) is not None)) if not ok]
    if missing:
        message = f"browser test needs {' and '.join(missing)} (scripts/setup.sh installs them)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return sync_playwright


#: True in the page once ``n`` files have a result (a class or an error): ``page.wait_for_function(.., arg=n)``.
RESULTS_DONE = ("n => window.privis.results.length === n"
                " && window.privis.results.every(r => r.className || r.error)")


@contextmanager
def client_page(url: str, *, width: int = 1280, height: int = 900, timeout_ms: int = 60_000) -> Iterator[Any]:
    """The web client at ``url`` (WebAssembly backend) in headless Chromium, once its model is loaded.

    Raises:
        RuntimeError: the page reported an error while starting (its message).
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(f"{url}/?ep=wasm", wait_until="load")
            page.wait_for_function("window.privis.ready || window.privis.error", timeout=timeout_ms)
            error = page.evaluate("window.privis.error")
            if error:
                raise RuntimeError(f"the web client failed to start: {error}")
            yield page
        finally:
            browser.close()


def protect_in_page(page: Any, files: list[Any], *, total: int | None = None, timeout_ms: int = 20_000) -> list[dict]:
    """Give ``files`` to the page's file input and wait until ``total`` files (default: these) have results."""
    page.set_input_files("#files", [f if isinstance(f, dict) else str(f) for f in files])
    page.wait_for_function(RESULTS_DONE, arg=len(files) if total is None else total, timeout=timeout_ms)
    return page.evaluate("window.privis.results")
