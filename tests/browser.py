"""Headless Chromium for the browser tests: Debian's ``/usr/bin/chromium`` driven by Playwright.

Needs ``/usr/bin/chromium`` and the ``playwright`` package (``scripts/setup.sh`` installs both). Without them a
browser test skips, except under ``CI=true``, where it must run. Playwright never downloads a browser here.
"""

from __future__ import annotations

import os
import shutil
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
