"""The reports as a browser shows them: headless Chromium (Debian's, driven by Playwright) opens the demo's,
an evaluation's and the leaderboard's report at a 1280-px-wide viewport; every image loads and nothing
makes the page scroll sideways, with every folded section opened too.

Needs ``/usr/bin/chromium`` and the ``playwright`` package (``scripts/setup.sh`` installs both). Without them
the test skips, except under ``CI=true``, where it must run. Playwright never downloads a browser here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from privis.experiments.evaluate import EvalConfig, evaluate
from privis.report import save_report

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = 1280
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _browser_or_skip():
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


def test_reports_render_load_every_image_and_fit_1280_px(tmp_path, quick_demo, quick_leaderboard):
    sync_playwright = _browser_or_skip()
    evaluation = evaluate("pixelate", EvalConfig(data="digits", train_size=300, test_size=100, epochs=2))
    pages = {name: save_report(result, tmp_path / f"{name}.html")
             for name, result in (("demo", quick_demo), ("evaluate", evaluation), ("leaderboard", quick_leaderboard))}
    profile = tmp_path / "chromium-profile"  # a fresh user-data-dir: nothing from a previous run
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=ARGS, headless=True,
            viewport={"width": VIEWPORT, "height": 900}, offline=True)
        try:
            page = context.new_page()
            for name, path in pages.items():
                page.goto(Path(path).resolve().as_uri(), wait_until="load")
                assert page.title() == f"privis: {name if name != 'evaluate' else evaluation.name}"
                assert page.locator("h1").inner_text().strip(), name
                widths = page.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
                assert len(widths) >= 1 and all(w > 0 for w in widths), (name, widths)
                assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT, name
                page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
                assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT, f"{name}, details open"
        finally:
            context.close()
