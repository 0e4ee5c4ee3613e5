"""The static HTML report: one self-contained page that opens like a leaderboard.

The boards come first; the conventions are folded under a "how to read" toggle, columns a reader needs less often
(`display.Column.secondary`) behind a "more columns" toggle, and runs and cost tables under their own toggles
below the charts. Filters by dataset, protocol and model family hide what a reader is not looking at.
No external resources (no CDN, fonts or scripts): the page works offline and from a file:// URL.
Sorting uses each cell's `data-sort` key, so "0.812 ± 0.013" sorts by 0.812 and missing values sort last.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from usemabench.leaderboard import display
from usemabench.leaderboard.aggregate import Leaderboard
from usemabench.leaderboard.markdown import FigureLink, group_summary
from usemabench.reports.figures import slug

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; padding: 0 1em; color: #222;
       box-sizing: border-box; }
h1 { margin-bottom: 0.2em; }
section.board, section.costs { margin-bottom: 2.5em; }
.scroll { overflow-x: auto; margin: 0.5em 0 1em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.45em; }
th { background: #f2f2f2; cursor: pointer; user-select: none; vertical-align: bottom; }
th[aria-sort="ascending"]::after { content: " ▲"; }
th[aria-sort="descending"]::after { content: " ▼"; }
td { white-space: nowrap; }
td.number { text-align: right; }
td.long { white-space: normal; overflow-wrap: anywhere; min-width: 14em; }
body:not(.all-columns) .secondary { display: none; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
code { background: #f4f4f4; padding: 0 0.2em; }
details { margin: 0.5em 0 1em; }
summary { cursor: pointer; font-weight: 600; }
details.how-to-read li { margin: 0.25em 0; }
.filters { display: flex; flex-wrap: wrap; gap: 0.5em 1.5em; align-items: center; padding: 0.5em 0.75em;
           margin: 1em 0; background: #f7f7f7; border: 1px solid #ddd; }
nav ul { display: flex; flex-wrap: wrap; gap: 0.25em 1.5em; list-style: none; padding: 0; margin: 0.5em 0 1.5em; }
"""

# Click a header to sort its table by the cells' data-sort keys; click again to reverse. Empty keys stay last.
# The filters hide boards of other datasets or protocols and rows of other model families; the "more columns"
# box shows the secondary columns. Both are re-applied on load, as a browser may restore the form's state.
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
function applyFilters() {
  const chosen = (name) => document.getElementById("filter-" + name).value;
  const dataset = chosen("dataset"), protocol = chosen("protocol"), family = chosen("family");
  document.querySelectorAll("[data-dataset]").forEach((element) => {
    element.hidden = (dataset !== "" && element.dataset.dataset !== dataset)
      || (protocol !== "" && element.dataset.protocol !== protocol);
  });
  document.querySelectorAll("tr[data-family]").forEach((row) => {
    row.hidden = family !== "" && row.dataset.family !== family;
  });
  document.body.classList.toggle("all-columns", document.getElementById("all-columns").checked);
}
document.querySelectorAll("table.sortable th").forEach((header) => {
  header.addEventListener("click", () => sortTable(header));
});
document.querySelectorAll(".filters select, .filters input").forEach((control) => {
  control.addEventListener("change", applyFilters);
});
applyFilters();
"""

NUMBER_CLASS = "number"
LONG_CLASS = "long"  # a text column with a cell longer than LONG_CELL_CHARS wraps, so the table keeps the page width
LONG_CELL_CHARS = 28
SECONDARY_CLASS = "secondary"


def _sort_text(value: float | str | None) -> str:
    if value is None:
        return ""
    return f"{value:.12g}" if isinstance(value, float) else str(value)


def _class_attribute(classes: list[str]) -> str:
    return f' class="{" ".join(classes)}"' if classes else ""


def html_table(table: display.Table) -> str:
    """A sortable table; a column sorts as numbers when every key in it is a number. Secondary columns carry the
    class the "more columns" toggle shows; rows of models carry their family for the family filter."""
    columns = range(len(table.columns))
    is_number = [all(isinstance(row[index], float) for row in table.sort_keys if row[index] is not None) for index in columns]
    secondary = table.secondary or [False] * len(table.columns)
    long = [not table.numeric[index] and any(len(row[index]) > LONG_CELL_CHARS for row in table.rows) for index in columns]
    header = "".join(
        f'<th{_class_attribute([SECONDARY_CLASS] if secondary[index] else [])} data-type="{"number" if is_number[index] else "text"}">'
        f"{html.escape(table.columns[index])}</th>"
        for index in columns
    )
    body = []
    for position, (cells, keys) in enumerate(zip(table.rows, table.sort_keys)):
        row = "".join(
            f"<td{_class_attribute(_cell_classes(table.numeric[index], long[index], secondary[index]))}"
            f' data-sort="{html.escape(_sort_text(keys[index]))}">{html.escape(cells[index])}</td>'
            for index in columns
        )
        family = f' data-family="{html.escape(table.families[position])}"' if table.families else ""
        body.append(f"<tr{family}>{row}</tr>")
    rows = "\n".join(body)
    return f'<div class="scroll"><table class="sortable"><thead><tr>{header}</tr></thead>\n<tbody>\n{rows}\n</tbody></table></div>'


def _cell_classes(numeric: bool, long: bool, secondary: bool) -> list[str]:
    return [name for name, used in ((NUMBER_CLASS, numeric), (LONG_CLASS, long), (SECONDARY_CLASS, secondary)) if used]


def _figures(figures: list[FigureLink], section: tuple[str, ...]) -> list[str]:
    return [
        f'<img src="{html.escape(figure.href)}" alt="{html.escape(figure.title)}">'
        for figure in figures
        if figure.section == section
    ]


def _folded(summary: str, *content: str, css_class: str = "") -> list[str]:
    opening = f'<details class="{css_class}">' if css_class else "<details>"
    return [opening, f"<summary>{html.escape(summary)}</summary>", *content, "</details>"]


def _select(name: str, label: str, values: Iterable[str]) -> str:
    options = "".join(f'<option value="{html.escape(value)}">{html.escape(value)}</option>' for value in sorted(set(values)))
    return f'<label>{label} <select id="filter-{name}"><option value="">all</option>{options}</select></label>'


def _filters(leaderboard: Leaderboard) -> str:
    families = {display.model_family(str(model)) for board in leaderboard.groups for model in board.table["model"]}
    families |= {display.model_family(str(model)) for model in leaderboard.costs.get("model", [])}
    folded = ", ".join(
        sorted({column for table in _tables(leaderboard) for column, secondary in zip(table.columns, table.secondary) if secondary})
    )
    return "".join([
        '<form class="filters">',
        _select("dataset", "dataset", [board.dataset for board in leaderboard.groups]),
        _select("protocol", "protocol", [board.protocol for board in leaderboard.groups]),
        _select("family", "model family", families),
        f'<label title="{html.escape(folded)}"><input type="checkbox" id="all-columns"> more columns</label>',
        "</form>",
    ])


def _tables(leaderboard: Leaderboard) -> list[display.Table]:
    """The tables whose columns the toggle folds: the boards' and the cost tables."""
    tables = [display.leaderboard_table(board) for board in leaderboard.groups]
    if not leaderboard.costs.empty:
        tables.append(display.costs_table(leaderboard.costs))
    return tables


def _board_sections(leaderboard: Leaderboard, figures: list[FigureLink]) -> tuple[list[str], list[str]]:
    sections, contents = [], []
    for board in leaderboard.groups:
        anchor = slug("board", board.dataset, board.protocol)
        where = f'data-dataset="{html.escape(board.dataset)}" data-protocol="{html.escape(board.protocol)}"'
        contents.append(f'<li {where}><a href="#{anchor}">{html.escape(f"{board.dataset} · {board.protocol}")}</a></li>')
        runs = display.runs_table(board)
        sections += [
            f'<section class="board" id="{anchor}" {where}>',
            f"<h2>{html.escape(f'{board.dataset} · {board.protocol}')}</h2>",
            f"<p>{html.escape(group_summary(board))}</p>",
            html_table(display.leaderboard_table(board)),
            *_figures(figures, ("group", board.dataset, board.protocol)),
            "<h3>Per-class Dice (mean over seeds)</h3>",
            html_table(display.per_class_table(board)),
            *_folded(f"Runs ({len(runs.rows)}): seed, status and record of each", html_table(runs)),
            "</section>",
        ]
    return sections, contents


def _cost_sections(leaderboard: Leaderboard, figures: list[FigureLink]) -> list[str]:
    sections = ['<h2 id="costs">Costs against resolution</h2>']
    if leaderboard.costs.empty:
        sections.append("<p>No profile records yet.</p>")
    for (device, precision, mode), rows in leaderboard.costs.groupby(["device", "precision", "mode"], sort=True):
        sections += [
            '<section class="costs">',
            f"<h3>{html.escape(f'{device} · {precision} · {mode}')}</h3>",
            *_figures(figures, ("costs", device, precision, mode)),
            *_folded(
                f"Table ({len(rows)} profiles)",
                html_table(display.costs_table(rows)),
                *[f"<p>Peak memory: {html.escape(method)}.</p>" for method in display.memory_methods(rows)],
            ),
            "</section>",
        ]
    return sections


def report_html(leaderboard: Leaderboard, figures: list[FigureLink], csv_links: list[tuple[str, str]], notes: list[str]) -> str:
    """The page; `figures` link the charts relative to the page, `csv_links` are (name, relative path)."""
    record_set = leaderboard.record_set
    counts = ", ".join(f"{record_set.counts[kind]} {kind}" for kind in ("eval", "train", "profile", "bench"))
    sections, contents = _board_sections(leaderboard, figures)
    if not leaderboard.groups:
        sections.append("<p>No train or eval records yet.</p>")
    contents.append('<li><a href="#costs">Costs against resolution</a></li>')
    sections += _cost_sections(leaderboard, figures)
    if not record_set.benches.empty:
        contents.append('<li><a href="#benchmarks">Benchmarks</a></li>')
        sections += ['<h2 id="benchmarks">Benchmarks</h2>', html_table(display.bench_table(record_set.benches))]
        for path in record_set.benches["record_path"]:
            sections += _figures(figures, ("bench", path))
    if notes:
        sections += ["<h2>Notes</h2>", "<ul>", *[f"<li>{html.escape(note)}</li>" for note in notes], "</ul>"]
    if record_set.problems:
        sections += ["<h2>Skipped files</h2>", html_table(display.problems_table(record_set.problems))]
    downloads = " · ".join(f'<a href="{html.escape(path)}">{html.escape(name)}</a>' for name, path in csv_links)
    conventions = [f"<li>{html.escape(line)}</li>" for line in display.conventions(leaderboard.groups)]
    page = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>usemabench leaderboard</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        "<h1>usemabench leaderboard</h1>",
        f"<p>Records read: {html.escape(counts)}."
        + (f" Skipped {len(record_set.problems)} file(s), listed at the end." if record_set.problems else "")
        + f" Tables as CSV: {downloads}. Generated by <code>usemabench leaderboard</code>; do not edit by hand.</p>",
        *_folded("How to read the tables", "<ul>", *conventions, "</ul>", css_class="how-to-read"),
        _filters(leaderboard),
        "<nav><ul>", *contents, "</ul></nav>",
        *sections,
        f"<script>{SCRIPT}</script>",
        "</body>",
        "</html>",
    ]
    return "\n".join(page) + "\n"
