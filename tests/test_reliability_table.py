"""README's "Reliability" table is rendered from the reliability tests' own parameters (tests/reliability_cases.py),
and every row is tried by a test."""

from __future__ import annotations

import re
from pathlib import Path

import reliability_cases
from reliability_cases import GROUPS, README, markdown_table, readme_table

TESTS = Path(__file__).resolve().parent
FIX = "regenerate it: python tests/reliability_cases.py --write"


def test_the_readme_table_is_the_rendered_cases():
    table = readme_table(README.read_text(encoding="utf-8"))
    assert table is not None, f"README.md has no reliability table markers; {FIX}"
    assert table == markdown_table(), f"README.md's reliability table differs from tests/reliability_cases.py; {FIX}"


def test_every_case_has_a_test():
    """A row no test takes would be a claim nobody checks: each case's group is parametrised whole, or the case by id."""
    sources = "\n".join(
        path.read_text(encoding="utf-8") for path in TESTS.rglob("test_*.py") if path.name != Path(__file__).name
    )
    untested = []
    for name, cases in GROUPS.items():
        whole = re.search(rf"params\({name}\)", sources)
        for case in cases:
            if not (whole or re.search(rf'params\({name}, only="{re.escape(case.id)}"\)', sources)):
                untested.append(f"{name}/{case.id}")
    assert not untested, f"reliability cases no test parametrises: {untested}"


def test_case_ids_are_unique_and_every_group_is_listed():
    ids = [case.id for cases in GROUPS.values() for case in cases]
    assert len(ids) == len(set(ids))
    defined = {name for name, value in vars(reliability_cases).items() if isinstance(value, list) and value
               and all(isinstance(item, reliability_cases.BadInput) for item in value)}
    assert defined == set(GROUPS)
