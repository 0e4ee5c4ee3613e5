"""Records on disk -> flat pandas tables, with every unusable file reported by name instead of raised."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
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
from usemabench.core.records import read_records


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


SHIPPED_LABEL = "usemabench-reference"  # how record paths of the package's own records are shown


def shipped_records_dir() -> Path:
    """The reference records shipped inside the package (read-only package data; may hold no records)."""
    return Path(str(resources.files("usemabench"))) / "reference" / "records"


def load_records(records_dir: str | os.PathLike, *, shipped: bool = False) -> RecordSet:
    """Read all records under `records_dir`; bad records and per-case files become `problems`.

    With `shipped`, the package's reference records (`shipped_records_dir()`) are read too, as a read-only
    source beside `records_dir`: their paths are shown as `usemabench-reference/...`, a record whose file
    name `records_dir` also holds is the user's copy and is read once, and a missing `records_dir` is then
    no error (a user in an empty folder still sees the reference).
    """
    root = Path(records_dir)
    sources = [(root, "")]
    if shipped and shipped_records_dir().is_dir() and shipped_records_dir().resolve() != root.resolve():
        sources.append((shipped_records_dir(), SHIPPED_LABEL))
    if not root.is_dir():
        if len(sources) == 1:
            raise FileNotFoundError(f"records folder {root} does not exist")
        sources = sources[1:]
    extractors = {"eval": eval_fields, "train": train_fields, "profile": profile_fields, "bench": bench_fields}
    rows: dict[str, list[dict]] = {kind: [] for kind in extractors}
    per_case_tables, problems, seen_names = [], [], set()
    for source_root, label in sources:
        records, skipped = read_records(source_root)
        problems += [Problem(_shown(item.path, source_root, label), _strip_path_prefix(item.reason, item.path)) for item in skipped]
        names = {Path(record["_path"]).name for record in records}
        for record in records:
            if Path(record["_path"]).name in seen_names:
                continue  # the same run in the user's folder and in the shipped records: the user's copy stands
            row = extractors[record["kind"]](record)
            row["record_path"] = _shown(record["_path"], source_root, label)
            rows[record["kind"]].append(row)
            if record["kind"] == "eval" and record["status"] == "ok" and row["per_case_file"]:
                csv_path = Path(record["_path"]).parent / str(row["per_case_file"])
                try:
                    table = read_per_case(csv_path)
                except ValueError as error:
                    problems.append(Problem(_shown(csv_path, source_root, label), f"{error}; used by {row['record_path']}"))
                    continue
                table.insert(0, "record_path", row["record_path"])
                per_case_tables.append(table)
        seen_names |= names
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


def _shown(path: str | os.PathLike, root: Path, label: str) -> str:
    """A path as pages show it: relative to its source folder, under `label` for a source other than the user's."""
    relative = _relative(path, root)
    return f"{label}/{relative}" if label else relative


def _columns_of(extract) -> list[str]:
    """Column names an extractor produces (read from an empty record so they stay in one place)."""
    return list(extract({"environment": {}, "cost": {}, "metrics": {}}))
