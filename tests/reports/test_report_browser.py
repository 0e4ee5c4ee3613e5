"""The HTML report in a real headless browser (Debian's chromium, driven by playwright).

Skipped cleanly where chromium or playwright is missing; CI installs them (.ci/run: apt `chromium`,
pip `playwright`, never playwright's own browser download).
"""

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


@pytest.fixture(scope="module")
def page(built_outputs):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            # Prove the page needs nothing from the network: every non-file request fails the test.
            external = []
            context.route(lambda url: not url.startswith("file://"), lambda route: (external.append(route.request.url), route.abort()))
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto((built_outputs / "reports" / "index.html").as_uri(), wait_until="load")
            yield page
            assert external == [] and errors == []
        finally:
            browser.close()


def test_images_load(page, built_outputs):
    images = page.evaluate("Array.from(document.images).map((image) => [image.getAttribute('src'), image.naturalWidth])")
    figures = sorted(path.name for path in (built_outputs / "reports" / "figures").glob("*.png"))
    assert sorted(Path(src).name for src, _ in images) == figures and len(figures) == 6
    assert all(width > 0 for _, width in images), images


def test_tables_render_every_row(page):
    # per board: leaderboard, per-class, runs; one cost table per (device, precision, mode); benchmarks; skipped
    assert page.locator("table.sortable").count() == 2 * 3 + 2 + 1 + 1
    first = page.locator("table.sortable").nth(0)  # other · quick
    assert first.locator("tbody tr").count() == 4
    assert first.locator("tbody tr").nth(0).locator("td").nth(1).inner_text() == "usema_s (ref)"


def test_clicking_a_header_sorts_the_rows(page):
    table = page.locator("table.sortable").nth(3)  # toy · quick leaderboard

    def models() -> list[str]:
        return table.locator("tbody tr td:nth-child(2)").all_inner_texts()

    assert models() == ["usema_s (ref)", "unet", "umamba_bot", "transunet"]
    header = table.locator("th", has_text="MACs")
    header.click()  # ascending MACs: 1.6M, 2.5M, 2.9M, 131.1M
    assert models() == ["usema_s (ref)", "umamba_bot", "unet", "transunet"]
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert models() == ["transunet", "unet", "umamba_bot", "usema_s (ref)"]
    table.locator("th", has_text="model").first.click()
    assert models() == ["transunet", "umamba_bot", "unet", "usema_s (ref)"]
