"""Records on disk -> flat pandas tables, with every unusable file reported by name instead of raised."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from usemabench.leaderboard.fields import (
    PER_CASE_COLUMNS,
    PER_CASE_REQUIRED,
    PER_CASE_SUMMARY_CLASSES,
    bench_fields,
    eval_fields,
    profile_fields,
    train_fields,
)
from usemabench.leaderboard.records import read_records


@dataclass(frozen=True)
class Problem:
    """A file that was skipped, named relative to the records folder, and why."""

    path: str
    reason: str


@dataclass
class RecordSet:
    """Every usable record of a records folder as one table per kind, plus the per-case scores."""

    root: Path
    evals: pd.DataFrame
    trains: pd.DataFrame
    profiles: pd.DataFrame
    benches: pd.DataFrame
    per_case: pd.DataFrame
    counts: dict[str, int]
    problems: list[Problem] = field(default_factory=list)


def _relative(path: str | os.PathLike, root: Path) -> str:
    path = Path(path)
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _strip_path_prefix(reason: str, path: Path) -> str:
    """RecordError messages start with the path; the report names the file separately and relatively."""
    prefix = f"{path}: "
    return reason[len(prefix):] if reason.startswith(prefix) else reason


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
    return frame.sort_values("record_path", kind="stable").reset_index(drop=True)


def read_per_case(csv_path: Path) -> pd.DataFrame:
    """One eval record's per-case CSV, class-summary rows dropped; raises ValueError naming the problem."""
    try:
        table = pd.read_csv(csv_path, dtype={"case_id": str, "class": str})
    except FileNotFoundError as error:
        raise ValueError("per-case CSV not found") from error
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ValueError(f"per-case CSV unreadable ({error})") from error
    missing = [column for column in PER_CASE_REQUIRED if column not in table.columns]
    if missing:
        raise ValueError(f"per-case CSV lacks column(s) {', '.join(missing)}")
    for column in PER_CASE_COLUMNS:
        if column not in table.columns:
            table[column] = float("nan")
    table = table[list(PER_CASE_COLUMNS)].copy()
    for column in PER_CASE_COLUMNS[2:]:
        table[column] = pd.to_numeric(table[column], errors="coerce")
    return table[~table["class"].str.lower().isin(PER_CASE_SUMMARY_CLASSES)]


def load_records(records_dir: str | os.PathLike) -> RecordSet:
    """Read all records under `records_dir`; bad records and per-case files become `problems`."""
    root = Path(records_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"records folder {root} does not exist")
    records, skipped = read_records(root)
    problems = [Problem(_relative(item.path, root), _strip_path_prefix(item.reason, item.path)) for item in skipped]
    extractors = {"eval": eval_fields, "train": train_fields, "profile": profile_fields, "bench": bench_fields}
    rows: dict[str, list[dict]] = {kind: [] for kind in extractors}
    per_case_tables = []
    for record in records:
        row = extractors[record["kind"]](record)
        row["record_path"] = _relative(record["_path"], root)
        rows[record["kind"]].append(row)
        if record["kind"] == "eval" and record["status"] == "ok" and row["per_case_file"]:
            csv_path = Path(record["_path"]).parent / str(row["per_case_file"])
            try:
                table = read_per_case(csv_path)
            except ValueError as error:
                problems.append(Problem(_relative(csv_path, root), f"{error}; used by {row['record_path']}"))
                continue
            table.insert(0, "record_path", row["record_path"])
            per_case_tables.append(table)
    per_case_columns = ["record_path", *PER_CASE_COLUMNS]
    per_case = pd.concat(per_case_tables, ignore_index=True) if per_case_tables else pd.DataFrame(columns=per_case_columns)
    return RecordSet(
        root=root,
        evals=_frame(rows["eval"], _columns_of(eval_fields)),
        trains=_frame(rows["train"], _columns_of(train_fields)),
        profiles=_frame(rows["profile"], _columns_of(profile_fields)),
        benches=_frame(rows["bench"], _columns_of(bench_fields)),
        per_case=per_case.sort_values(["record_path", "case_id", "class"], kind="stable").reset_index(drop=True),
        counts={kind: len(kind_rows) for kind, kind_rows in rows.items()},
        problems=sorted(problems, key=lambda problem: (problem.path, problem.reason)),
    )


def _columns_of(extract) -> list[str]:
    """Column names an extractor produces (read from an empty record so they stay in one place)."""
    return list(extract({"environment": {}, "cost": {}, "metrics": {}}))
