"""The HTML report in a real headless browser (Debian's chromium, driven by playwright), at 1400 px.

Skipped cleanly where chromium or playwright is missing; CI installs them (.ci/run: apt `chromium`,
pip `playwright`, never playwright's own browser download).

"Nothing overflows" is measured on element boxes, not judged from pixels: no rendered element ends right of the
viewport, no element with a non-visible overflow holds more than it shows, and every figure is shown at its own
size (a figure squeezed to fit would shrink its labels).
"""

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
WIDTH = 1400
COMMITTED_REPORTS = Path(__file__).resolve().parents[2] / "reports"
# The committed pages: the main leaderboard and any other committed board (reports/cpu-reference/, ...).
COMMITTED_PAGES = [*COMMITTED_REPORTS.glob("index.html"), *sorted(COMMITTED_REPORTS.glob("*/index.html"))]

# Every rendered element that ends right of the page, scrolls or clips its content, and every figure not shown
# at its natural size; each as 'tag#id.class "text": what'.
OVERFLOWS = """
() => {
  const width = document.documentElement.clientWidth;
  const name = (element) => `${element.tagName.toLowerCase()}${element.id ? "#" + element.id : ""}`
    + `${element.className ? "." + String(element.className).replace(/ /g, ".") : ""}`
    + ` "${(element.innerText || element.getAttribute("src") || "").slice(0, 40)}"`;
  const problems = [];
  for (const element of document.body.querySelectorAll("*")) {
    if (element.getClientRects().length === 0) continue;  // not rendered: hidden, filtered out or folded away
    const box = element.getBoundingClientRect();
    if (box.right > width + 0.5) problems.push(`${name(element)}: ends at ${box.right} px`);
    const overflow = getComputedStyle(element).overflowX;
    if (overflow !== "visible" && element.scrollWidth > element.clientWidth + 1) {
      problems.push(`${name(element)}: ${element.scrollWidth} px of content in ${element.clientWidth} px`);
    }
    if (element.tagName === "IMG" && Math.abs(box.width - element.naturalWidth) > 0.5) {
      problems.push(`${name(element)}: shown ${box.width} px wide, drawn ${element.naturalWidth} px`);
    }
  }
  return problems;
}
"""


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, path: Path):
    """The page at 1400 px; fails the test on a script error or any request that is not a local file."""
    context = browser.new_context(viewport={"width": WIDTH, "height": 900})
    # Prove the page needs nothing from the network: every non-file request fails the test.
    external, errors = [], []
    context.route(lambda url: not url.startswith("file://"), lambda route: (external.append(route.request.url), route.abort()))
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri(), wait_until="load")
    return page, external, errors


@pytest.fixture(scope="module")
def page(browser, built_outputs):
    page, external, errors = open_page(browser, built_outputs / "reports" / "index.html")
    yield page
    assert external == [] and errors == []


def _open_every_fold(page) -> None:
    page.evaluate("document.querySelectorAll('details').forEach((details) => { details.open = true; })")


def _close_every_fold(page) -> None:
    page.evaluate("document.querySelectorAll('details').forEach((details) => { details.open = false; })")


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


def test_conventions_are_folded_and_open_on_click(page):
    how_to_read = page.locator("details.how-to-read")
    assert how_to_read.get_attribute("open") is None
    assert not page.get_by_text("p (Holm): two-sided Wilcoxon", exact=False).is_visible()
    how_to_read.locator("summary").click()
    assert page.get_by_text("p (Holm): two-sided Wilcoxon", exact=False).is_visible()
    how_to_read.locator("summary").click()


def test_secondary_columns_appear_behind_the_toggle(page):
    board = page.locator("table.sortable").nth(0)
    visible = lambda: board.locator("th:visible").all_inner_texts()  # noqa: E731
    assert "Dice (cases)" not in visible() and "Dice (seeds)" in visible() and "family" in visible()
    page.locator("#all-columns").check()
    assert "Dice (cases)" in visible() and "peak train memory" in visible()
    page.locator("#all-columns").uncheck()
    assert "Dice (cases)" not in visible()


def test_filters_hide_other_boards_and_families(page):
    boards = page.locator("section.board")
    page.select_option("#filter-dataset", "toy")
    assert [board.get_attribute("id") for board in boards.all() if board.is_visible()] == ["board_toy_quick"]
    page.select_option("#filter-family", "mamba")  # the fabricated `unet` is no registered name: "unregistered"
    toy = page.locator("#board_toy_quick table.sortable").first
    assert toy.locator("tbody tr:visible td:nth-child(2)").all_inner_texts() == ["umamba_bot"]
    _open_every_fold(page)
    costs = page.locator("section.costs tr[data-family]")
    assert {row.get_attribute("data-family") for row in costs.all() if row.is_visible()} == {"mamba"}
    _close_every_fold(page)
    page.select_option("#filter-family", "")
    page.select_option("#filter-dataset", "")
    assert boards.count() == 2 and all(board.is_visible() for board in boards.all())


def test_nothing_overflows_at_1400_px(page):
    assert page.evaluate(OVERFLOWS) == []
    _open_every_fold(page)  # the runs and cost tables too
    assert page.evaluate(OVERFLOWS) == []
    page.locator("#all-columns").check()  # a wide table may scroll inside its box then, the page never does
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    page.locator("#all-columns").uncheck()


def test_the_overflow_check_sees_an_element_wider_than_the_page(page):
    page.evaluate("document.body.insertAdjacentHTML('beforeend', '<p id=\"too-wide\" style=\"width: 2000px\">x</p>')")
    try:
        assert any(problem.startswith('p#too-wide "x": ends at') for problem in page.evaluate(OVERFLOWS))
    finally:
        page.evaluate("document.getElementById('too-wide').remove()")


@pytest.mark.parametrize("committed", COMMITTED_PAGES, ids=lambda path: path.relative_to(COMMITTED_REPORTS).as_posix())
def test_the_committed_report_fits_1400_px(browser, committed):
    page, external, errors = open_page(browser, committed)
    assert page.evaluate(OVERFLOWS) == []
    _open_every_fold(page)
    assert page.evaluate(OVERFLOWS) == []
    assert external == [] and errors == []


@pytest.fixture(scope="module")
def compare_page_file(fabricated_records, tmp_path_factory):
    """The `usemabench compare` page of the fabricated records: unet against two references, one thing missing."""
    from usemabench.leaderboard.aggregate import aggregate
    from usemabench.leaderboard.compare import Missing, compare_page
    from usemabench.leaderboard.store import load_records
    from usemabench.reports.compare_html import compare_html

    blocks = compare_page(aggregate(load_records(fabricated_records)), "unet", ["usema_s", "transunet"], "quick",
                          [Missing("profile of unet at 1024x1024", "usemabench profile --model unet --resolution 1024")])
    path = tmp_path_factory.mktemp("compare") / "unet_vs_usema_s.html"
    path.write_text(compare_html(blocks), encoding="utf-8")
    return path


def test_the_compare_page_fits_1400_px_with_its_conventions_folded(browser, compare_page_file):
    page, external, errors = open_page(browser, compare_page_file)
    assert page.locator("table").count() >= 3
    assert page.locator("details.how-to-read").get_attribute("open") is None
    assert page.evaluate(OVERFLOWS) == []
    _open_every_fold(page)
    assert page.evaluate(OVERFLOWS) == []
    assert external == [] and errors == []
