"""`usemabench models`: the registry as a table, with the pretrained weights each model has (`usemabench weights`)."""

from __future__ import annotations

import argparse

from usemabench.text_table import format_table
from usemabench.zoo.pretrained import default_tag, list_pretrained, split_model_name
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


def format_pretrained(name: str, tags: dict[str, list[str]]) -> str:
    """The model's default tag (the weights pretrained=True loads), with how many other tags exist; '-' for none."""
    if name not in tags:
        return "-"
    chosen = default_tag(name)
    others = len(tags[name]) - (chosen is not None)
    shown = f".{chosen}" if chosen else f"{len(tags[name])} tag(s)"
    return shown + (f" (+{others})" if chosen and others else "")


def run(args: argparse.Namespace) -> int:
    tags: dict[str, list[str]] = {}
    for weights_name in list_pretrained():
        architecture, tag = split_model_name(weights_name)
        tags.setdefault(architecture, []).append(tag)
    rows = [("name", "family", "params (1 in, 2 cls)", "size policy", "pretrained", "notes")]
    for name in list_models(args.pattern, args.family):
        info = get_model_info(name)
        if info.available:
            params = f"{parameter_count(name) / 1e6:.2f}M"
        else:
            params = f"needs {', '.join(info.requires)}"
        notes = "small CPU variant" if info.small else ""
        rows.append((name, info.family, params, format_size_policy(name), format_pretrained(name, tags), notes))
    print(format_table(rows))
    return 0
