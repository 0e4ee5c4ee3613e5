"""Case groups (patient, video sequence): frames of one group are near-duplicates, so a split keeps each
group whole. Groups come from `?group_by=REGEX` / `--group-by REGEX` (the first capture group, else the whole
match, of each case id) or from a `groups.csv` (case_id,group) shipped in the dataset folder.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from usemabench.datasets.errors import DatasetError

GROUP_COLUMNS = ("group", "group_id", "patient", "patient_id", "subject", "sequence", "video", "series")
ID_COLUMNS = ("case_id", "case", "id", "image", "filename", "file_name", "name")
# inferred: a trailing frame/slice number after a prefix that names the group (seq12_frame003 -> seq12_frame)
NUMBERED_NAME = r"^(.*\D)\d+$"


def groups_from_regex(case_ids: Iterable[str], pattern: str) -> dict[str, str]:
    """{case id: group} by `pattern`; every case must match (a case that does not means the pattern is wrong)."""
    try:
        regex = re.compile(pattern)
    except re.error as error:
        raise DatasetError(f"group_by {pattern!r} is not a regular expression ({error})") from None
    groups: dict[str, str] = {}
    unmatched = []
    for case in case_ids:
        match = regex.search(case)
        if match is None or (regex.groups and match.group(1) is None):
            unmatched.append(case)
            continue
        groups[case] = match.group(1) if regex.groups else match.group(0)
    if unmatched:
        raise DatasetError(f"group_by {pattern!r} does not match {len(unmatched)} case id(s) (e.g. {', '.join(unmatched[:3])})")
    return groups


def groups_from_csv(path: Path, case_ids: Iterable[str]) -> dict[str, str]:
    """{case id: group} of a groups.csv; every case of the data must be listed, and only those."""
    try:
        rows = [row for row in csv.reader(path.read_text(encoding="utf-8-sig").splitlines()) if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(f"{path}: unreadable groups file ({error})") from None
    header = [column.strip().lower() for column in rows[0]] if rows else []
    id_column = next((header.index(name) for name in ID_COLUMNS if name in header), None)
    group_column = next((header.index(name) for name in GROUP_COLUMNS if name in header), None)
    if id_column is None or group_column is None:
        raise DatasetError(f"{path}: a groups file needs a header with a case id column ({', '.join(ID_COLUMNS)}) and a group column ({', '.join(GROUP_COLUMNS)})")
    listed: dict[str, str] = {}  # by the id as written and by its file stem (ids may be file names)
    for row in rows[1:]:
        if len(row) > max(id_column, group_column):
            given = row[id_column].strip()
            listed[given] = listed[Path(given).stem] = row[group_column].strip()
    groups = {case: listed.get(case, "") for case in case_ids}
    missing = [case for case, group in groups.items() if not group]
    if missing:
        raise DatasetError(f"{path}: {len(missing)} case(s) have no group (e.g. {', '.join(missing[:3])}); list every case")
    return groups


def grouping_hint(case_ids: Iterable[str]) -> str | None:
    """A warning when case ids look like numbered frames of a few groups (seq12_frame003), else None."""
    cases = list(case_ids)
    regex = re.compile(NUMBERED_NAME)
    prefixes = Counter(match.group(1) for match in map(regex.search, cases) if match)
    matched = sum(prefixes.values())
    if len(prefixes) < 2 or matched < 0.8 * len(cases) or matched < 2 * len(prefixes):
        return None
    example, size = prefixes.most_common(1)[0]
    return (
        f"case ids look grouped: {len(prefixes)} groups by their name without the trailing number (e.g. '{example}': "
        f"{size} cases); if a group's images are near-duplicates (frames of one video, slices of one patient), split "
        f"by group: ?group_by={NUMBERED_NAME} or `usemabench datasets split ... --group-by '{NUMBERED_NAME}'`"
    )

