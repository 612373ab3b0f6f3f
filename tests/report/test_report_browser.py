"""The reports as a browser shows them: headless Chromium (Debian's, driven by Playwright) opens the demo's,
an evaluation's and the leaderboard's report at a 1280-px-wide viewport; every image loads and nothing
makes the page scroll sideways, with every folded section opened too.

Needs ``/usr/bin/chromium`` and the ``playwright`` package (``scripts/setup.sh`` installs both). Without them
the test skips, except under ``CI=true``, where it must run. Playwright never downloads a browser here.
"""

from __future__ import annotations

from pathlib import Path

from browser import ARGS, CHROMIUM, browser_or_skip
from privis.experiments.evaluate import EvalConfig, evaluate
from privis.report import save_report

VIEWPORT = 1280


def test_reports_render_load_every_image_and_fit_1280_px(tmp_path, quick_demo, quick_leaderboard):
    sync_playwright = browser_or_skip()
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
