"""`usemabench leaderboard` (alias `report`) and `usemabench compare`: tables, charts and pages from records."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from usemabench.core.io import atomic_write_text
from usemabench.leaderboard.aggregate import DEFAULT_REFERENCE, aggregate
from usemabench.leaderboard.build import DEFAULT_LEADERBOARD_DIR, DEFAULT_RECORDS_DIR, DEFAULT_REPORTS_DIR
from usemabench.leaderboard.compare import compare_markdown
from usemabench.leaderboard.store import load_records
from usemabench.reports.build import build


def register(subparsers: argparse._SubParsersAction) -> None:
    board = subparsers.add_parser(
        "leaderboard",
        aliases=["report"],
        help="regenerate leaderboard/ (LEADERBOARD.md, CSVs) and reports/ (charts, index.html) from the records",
    )
    board.add_argument("--records-dir", type=Path, default=DEFAULT_RECORDS_DIR, help="default: %(default)s")
    board.add_argument("--leaderboard-dir", type=Path, default=DEFAULT_LEADERBOARD_DIR, help="default: %(default)s")
    board.add_argument("--reports-dir", type=Path, default=DEFAULT_REPORTS_DIR, help="default: %(default)s")
    board.add_argument("--reference", default=DEFAULT_REFERENCE, help="model the paired tests compare against (default: %(default)s)")
    board.add_argument("--strict", action="store_true", help="write nothing and exit 1 when any record file is skipped")
    board.set_defaults(handler=run_leaderboard)

    compare = subparsers.add_parser("compare", help="one-page side-by-side of MODEL and a reference, from the records")
    compare.add_argument("model", help="the model to compare, e.g. your own registered model")
    compare.add_argument("--against", default=DEFAULT_REFERENCE, help="reference model (default: %(default)s)")
    compare.add_argument("--records-dir", type=Path, default=DEFAULT_RECORDS_DIR, help="default: %(default)s")
    compare.add_argument("--output", type=Path, default=None,
                         help="Markdown file to write (default: <reports-dir>/compare/MODEL_vs_AGAINST.md)")
    compare.add_argument("--reports-dir", type=Path, default=DEFAULT_REPORTS_DIR, help="default: %(default)s")
    compare.set_defaults(handler=run_compare)


def _report_skipped(problems) -> None:
    for problem in problems:
        print(f"skipped {problem.path}: {problem.reason}", file=sys.stderr)


def run_leaderboard(args: argparse.Namespace) -> int:
    result = build(args.records_dir, args.leaderboard_dir, args.reports_dir, reference=args.reference, strict=args.strict)
    _report_skipped(result.problems)
    if args.strict and result.problems:
        print(f"--strict: {len(result.problems)} record file(s) skipped, nothing written", file=sys.stderr)
        return 1
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    counts = result.leaderboard.record_set.counts
    print(
        f"read {sum(counts.values())} records from {args.records_dir} ({len(result.problems)} skipped); "
        f"wrote {len(result.written)} files; see {args.leaderboard_dir / 'LEADERBOARD.md'} and {args.reports_dir / 'index.html'}"
    )
    return 0


def run_compare(args: argparse.Namespace) -> int:
    record_set = load_records(args.records_dir)
    _report_skipped(record_set.problems)
    page = compare_markdown(aggregate(record_set, reference=args.against), args.model, args.against)
    output = args.output or args.reports_dir / "compare" / f"{args.model}_vs_{args.against}.md"
    atomic_write_text(output, page)
    print(page, end="")
    print(f"written to {output}", file=sys.stderr)
    return 0
