"""`usemabench models`: the registry as a table."""

from __future__ import annotations

import argparse

from usemabench.text_table import format_table
from usemabench.zoo.registry import get_model_info, list_models, parameter_count


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list registered models with family, parameters and size policy")
    parser.add_argument("pattern", nargs="?", default=None, help="shell-style name filter, e.g. 'usema_s*'")
    parser.add_argument("--family", default=None, help="only this family")
    parser.set_defaults(handler=run)


def format_size_policy(name: str) -> str:
    info = get_model_info(name)
    if info.size_policy == "any" or info.size_divisor == 1:
        return "any size"
    return f"{info.size_policy} to /{info.size_divisor}"


def run(args: argparse.Namespace) -> int:
    rows = [("name", "family", "params (1 in, 2 cls)", "size policy", "notes")]
    for name in list_models(args.pattern, args.family):
        info = get_model_info(name)
        if info.available:
            params = f"{parameter_count(name) / 1e6:.2f}M"
        else:
            params = f"needs {', '.join(info.requires)}"
        notes = "small CPU variant" if info.small else ""
        rows.append((name, info.family, params, format_size_policy(name), notes))
    print(format_table(rows))
    return 0
