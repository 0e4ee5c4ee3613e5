"""The static HTML report: one self-contained page, sortable tables, figures by relative path.

No external resources (no CDN, fonts or scripts): the page works offline and from a file:// URL.
Sorting uses each cell's `data-sort` key, so "0.812 ± 0.013" sorts by 0.812 and missing values sort last.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from usemabench.leaderboard import display
from usemabench.leaderboard.aggregate import Leaderboard
from usemabench.leaderboard.markdown import group_summary
from usemabench.reports.figures import ReportFigure, slug

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
.scroll { overflow-x: auto; margin: 0.5em 0 1.5em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; white-space: nowrap; }
th { background: #f2f2f2; cursor: pointer; user-select: none; white-space: nowrap; }
th[aria-sort="ascending"]::after { content: " ▲"; }
th[aria-sort="descending"]::after { content: " ▼"; }
td.number { text-align: right; white-space: nowrap; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""

# Click a header to sort its table by the cells' data-sort keys; click again to reverse. Empty keys stay last.
SCRIPT = """
function sortTable(header) {
  const table = header.closest("table");
  const column = header.cellIndex;
  const numeric = header.dataset.type === "number";
  const ascending = header.getAttribute("aria-sort") !== "ascending";
  table.querySelectorAll("th").forEach((cell) => cell.removeAttribute("aria-sort"));
  header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = a.cells[column].dataset.sort, y = b.cells[column].dataset.sort;
    if (x === "" || y === "") return (x === "") - (y === "");
    const order = numeric ? Number(x) - Number(y) : x.localeCompare(y);
    return ascending ? order : -order;
  });
  rows.forEach((row) => body.appendChild(row));
}
document.querySelectorAll("table.sortable th").forEach((header) => {
  header.addEventListener("click", () => sortTable(header));
});
"""


NUMBER_CLASS = ' class="number"'


def _sort_text(value: float | str | None) -> str:
    if value is None:
        return ""
    return f"{value:.12g}" if isinstance(value, float) else str(value)


def html_table(table: display.Table) -> str:
    """A sortable table; a column sorts as numbers when every key in it is a number."""
    is_number = [
        all(isinstance(row[index], float) for row in table.sort_keys if row[index] is not None)
        for index in range(len(table.columns))
    ]
    header = "".join(
        f'<th data-type="{"number" if number else "text"}">{html.escape(column)}</th>'
        for column, number in zip(table.columns, is_number)
    )
    body = []
    for cells, keys in zip(table.rows, table.sort_keys):
        row = "".join(
            f'<td{NUMBER_CLASS if numeric else ""} data-sort="{html.escape(_sort_text(key))}">{html.escape(cell)}</td>'
            for cell, key, numeric in zip(cells, keys, table.numeric)
        )
        body.append(f"<tr>{row}</tr>")
    rows = "\n".join(body)
    return f'<div class="scroll"><table class="sortable"><thead><tr>{header}</tr></thead>\n<tbody>\n{rows}\n</tbody></table></div>'


def _figures(figures: list[ReportFigure], section: tuple[str, ...], link: Callable[[ReportFigure], str]) -> list[str]:
    return [
        f'<img src="{html.escape(link(figure))}" alt="{html.escape(figure.title)}">'
        for figure in figures
        if figure.section == section
    ]


def report_html(
    leaderboard: Leaderboard,
    figures: list[ReportFigure],
    link: Callable[[ReportFigure], str],
    csv_links: list[tuple[str, str]],
    notes: list[str],
) -> str:
    """The page; `link` gives a figure's path relative to the page, `csv_links` (name, relative path)."""
    record_set = leaderboard.record_set
    counts = ", ".join(f"{record_set.counts[kind]} {kind}" for kind in ("eval", "train", "profile", "bench"))
    sections, contents = [], []
    for board in leaderboard.groups:
        anchor = slug("board", board.dataset, board.protocol)
        contents.append(f'<li><a href="#{anchor}">{html.escape(f"{board.dataset} · {board.protocol}")}</a></li>')
        sections += [
            f'<h2 id="{anchor}">{html.escape(f"{board.dataset} · {board.protocol}")}</h2>',
            f"<p>{html.escape(group_summary(board))}</p>",
            html_table(display.leaderboard_table(board)),
            *_figures(figures, ("group", board.dataset, board.protocol), link),
            "<h3>Per-class Dice (mean over seeds)</h3>",
            html_table(display.per_class_table(board)),
            "<h3>Runs</h3>",
            html_table(display.runs_table(board)),
        ]
    contents.append('<li><a href="#costs">Costs against resolution</a></li>')
    sections.append('<h2 id="costs">Costs against resolution</h2>')
    if leaderboard.costs.empty:
        sections.append("<p>No profile records yet.</p>")
    for (device, precision, mode), rows in leaderboard.costs.groupby(["device", "precision", "mode"], sort=True):
        sections += [
            f"<h3>{html.escape(f'{device} · {precision} · {mode}')}</h3>",
            html_table(display.costs_table(rows)),
            *[f"<p>Peak memory: {html.escape(method)}.</p>" for method in display.memory_methods(rows)],
            *_figures(figures, ("costs", device, precision, mode), link),
        ]
    if not record_set.benches.empty:
        contents.append('<li><a href="#benchmarks">Benchmarks</a></li>')
        sections += ['<h2 id="benchmarks">Benchmarks</h2>', html_table(display.bench_table(record_set.benches))]
        for path in record_set.benches["record_path"]:
            sections += _figures(figures, ("bench", path), link)
    if notes:
        sections += ["<h2>Notes</h2>", "<ul>", *[f"<li>{html.escape(note)}</li>" for note in notes], "</ul>"]
    if record_set.problems:
        sections += ["<h2>Skipped files</h2>", html_table(display.problems_table(record_set.problems))]
    downloads = " · ".join(f'<a href="{html.escape(path)}">{html.escape(name)}</a>' for name, path in csv_links)
    page = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>usemabench report</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        "<h1>usemabench report</h1>",
        "<p>Generated by <code>usemabench leaderboard</code> from the record files; do not edit by hand. "
        f"Records read: {html.escape(counts)}."
        + (f" Skipped {len(record_set.problems)} file(s), listed at the end." if record_set.problems else "")
        + f" Tables as CSV: {downloads}.</p>",
        "<ul>", *[f"<li>{html.escape(line)}</li>" for line in display.conventions(leaderboard.groups)], "</ul>",
        "<nav><ul>", *contents, "</ul></nav>",
        *sections,
        f"<script>{SCRIPT}</script>",
        "</body>",
        "</html>",
    ]
    return "\n".join(page) + "\n"
