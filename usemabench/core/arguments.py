"""Command-line values that several command groups accept, checked in one place (argparse `type=` callables)."""

from __future__ import annotations

import argparse


def _whole_number(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"a {what} is a whole number >= 0, got {text!r}")
    return value


def seed_value(text: str) -> int:
    """A seed as given on any command line: a whole number >= 0 (a negative one is a typo, not a seed)."""
    return _whole_number(text, "seed")


def fold_value(text: str) -> int:
    """A fold number (`--fold`): a whole number >= 0."""
    return _whole_number(text, "fold")
