"""`usemabench leaderboard` (alias `report`) and `usemabench compare`: tables, charts and pages from records."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from usemabench.core.io import atomic_write_text
from usemabench.leaderboard.aggregate import DEFAULT_REFERENCE, aggregate
from usemabench.leaderboard.build import DEFAULT_LEADERBOARD_DIR, DEFAULT_RECORDS_DIR, DEFAULT_REPORTS_DIR
from usemabench.leaderboard.compare import DEFAULT_PROTOCOL, DEFAULT_REFERENCES, DEFAULT_SIZES, compare_page, page_markdown
from usemabench.leaderboard.store import load_records
from usemabench.reports.build import build
from usemabench.reports.compare_html import compare_html
from usemabench.runners.errors import registered_model
from usemabench.runners.protocol import load_protocol


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

    compare = subparsers.add_parser(
        "compare", aliases=["bench"],
        help="MODEL beside reference models in one command: trains, evaluates and profiles what has no record, reuses "
        "reference runs (shipped with the package or yours) with the same protocol, split, config and data, and writes "
        "one page (Markdown + HTML)",
    )
    compare.add_argument("model", help="the model to compare, e.g. your own registered model")
    compare.add_argument("--against", type=_names, default=list(DEFAULT_REFERENCES),
                         help="comma-separated reference models, the first one the baseline of ratios "
                         f"(default: {','.join(DEFAULT_REFERENCES)})")
    compare.add_argument("--dataset", action="append", default=[],
                         help="registered dataset, repeatable (default: those the first reference has records on under "
                         "the protocol and whose data is here)")
    compare.add_argument("--protocol", default=DEFAULT_PROTOCOL, help="packaged name or JSON file (default: %(default)s)")
    compare.add_argument("--seeds", type=_seeds, default=None, help="comma-separated (default: the protocol's seeds)")
    compare.add_argument("--resolutions", type=_sides, default=list(DEFAULT_SIZES),
                         help="inference profile sides beside the protocol's resolution (default: %(default)s)")
    compare.add_argument("--no-run", action="store_true",
                         help="train and profile nothing: the page from the records, naming what is missing")
    compare.add_argument("--records-dir", type=Path, default=DEFAULT_RECORDS_DIR, help="your records (default: %(default)s)")
    compare.add_argument("--runs-dir", type=Path, default=Path("runs"), help="checkpoints (default: %(default)s)")
    compare.add_argument("--reports-dir", type=Path, default=DEFAULT_REPORTS_DIR, help="default: %(default)s")
    compare.add_argument("--output", type=Path, default=None,
                         help="Markdown file, the HTML beside it (default: <reports-dir>/compare/MODEL_vs_REFERENCES.md)")
    compare.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ... (default: %(default)s)")
    compare.add_argument("--no-progress", action="store_true", help="no progress bars")
    compare.set_defaults(handler=run_compare)


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return names


def _seeds(text: str) -> list[int]:
    if not all(name.isdigit() for name in _names(text)):
        raise argparse.ArgumentTypeError(f"seeds are whole numbers >= 0, comma-separated, got {text!r}")
    return [int(name) for name in _names(text)]


def _sides(text: str) -> list[int]:
    if not all(name.isdigit() and int(name) > 0 for name in _names(text)):
        raise argparse.ArgumentTypeError(f"resolutions are positive integers (pixels per side), comma-separated, got {text!r}")
    return [int(name) for name in _names(text)]


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
    """Plan, run what is missing (unless --no-run), then write the page; 1 when the page still lacks something."""
    from usemabench.leaderboard import bench  # builds models and trains: loaded only when a comparison runs

    protocol = load_protocol(args.protocol)
    for name in dict.fromkeys([args.model, *args.against]):
        registered_model(name)
    comparison = bench.Comparison(
        model=args.model, references=tuple(name for name in args.against if name != args.model) or tuple(args.against),
        datasets=tuple(args.dataset), protocol=args.protocol, protocol_name=protocol.name,
        seeds=tuple(args.seeds if args.seeds is not None else protocol.seeds), sizes=tuple(args.resolutions),
        records_dir=args.records_dir, runs_dir=args.runs_dir, device=args.device, progress=not args.no_progress,
        command_prefix=" ".join(["usemabench", *[f"--model-module {module}" for module in args.model_module]]),
    )
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731 - stdout carries the page
    record_set = load_records(args.records_dir, shipped=True)
    plan = bench.plan(comparison, record_set, log)
    runs = len(plan.identities) * len(comparison.seeds)
    log(f"compare: {runs - len(plan.missing())} of {runs} runs found in the records; "
        + ("training none (--no-run)" if args.no_run else f"training {len(plan.missing())}"))
    if not args.no_run:
        bench.run_missing(plan, log)
        bench.profile_missing(plan, bench.missing_profiles(plan, load_records(args.records_dir, shipped=True)), log)
        record_set = load_records(args.records_dir, shipped=True)
        plan = bench.plan(plan.comparison, record_set, log)
    _report_skipped(record_set.problems)
    missing = bench.missing_items(plan, record_set)
    leaderboard = aggregate(bench.select(record_set, plan), reference=comparison.references[0])
    blocks = compare_page(leaderboard, comparison.model, list(comparison.references), protocol.name, missing)
    page = page_markdown(blocks)
    output = args.output or args.reports_dir / "compare" / f"{args.model}_vs_{'_'.join(comparison.references)}.md"
    atomic_write_text(output, page)
    atomic_write_text(output.with_suffix(".html"), compare_html(blocks))
    print(page, end="")
    log(f"written to {output} and {output.with_suffix('.html')}")
    return 1 if missing and not args.no_run else 0
