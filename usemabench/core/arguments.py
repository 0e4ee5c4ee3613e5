"""Command-line values that several command groups accept, checked in one place (argparse `type=` callables)."""

from __future__ import annotations

import argparse


def seed_value(text: str) -> int:
    """A seed as given on any command line: a whole number >= 0 (a negative one is a typo, not a seed)."""
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if seed < 0:
        raise argparse.ArgumentTypeError(f"a seed is a whole number >= 0, got {text!r}")
    return seed
