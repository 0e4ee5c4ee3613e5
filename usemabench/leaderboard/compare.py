"""`usemabench compare MODEL --against REF`: one page, the two models side by side, from the records."""

from __future__ import annotations

import math

import pandas as pd

from usemabench.leaderboard import display
from usemabench.leaderboard.aggregate import GroupBoard, Leaderboard
from usemabench.leaderboard.markdown import markdown_table

COST_METRICS = (("macs", "MACs", display.count), ("peak_memory_bytes", "peak memory", display.memory),
                ("latency_ms", "latency ms", display.milliseconds))


def _plain(rows: list[list[str]], columns: list[str]) -> display.Table:
    return display.Table(columns, rows, [[None] * len(columns) for _ in rows], [False] + [True] * (len(columns) - 1))


def _accuracy_rows(row: pd.Series) -> list[str]:
    return [
        row["status"],
        f"{row['seeds_ok']}/{row['seeds_expected']}",
        display.mean_std(row["dice_mean"], row["dice_std_seeds"]),
        display.mean_std(row["dice_cases_mean"], row["dice_cases_std"]),
        display.interval(row["dice_ci_low"], row["dice_ci_high"]),
        display.mean_std(row["hd95_mean"], row["hd95_std_seeds"], 2),
        display.mean_std(row["hd95_cases_mean"], row["hd95_cases_std"], 2),
        display.count(row["params"]),
        display.count(row["macs"]),
        display.memory(row["peak_train_memory_bytes"]),
        display.milliseconds(row["latency_ms"]),
    ]


ACCURACY_LABELS = ["status", "seeds", "Dice (seeds)", "Dice (cases)", "Dice 95% CI", "HD95 px (seeds)", "HD95 px (cases)",
                   "params", "MACs (training resolution)", "peak train memory", "latency ms"]


def _group_section(board: GroupBoard, model: str, against: str) -> list[str]:
    rows = board.table.set_index("model")
    ours, theirs = rows.loc[model], rows.loc[against]
    table_rows = [[label, a, b] for label, a, b in zip(ACCURACY_LABELS, _accuracy_rows(ours), _accuracy_rows(theirs))]
    if display.has_hd95_pooled(board):
        pooled = [display.mean_std(row["hd95_pooled_mean"], row["hd95_pooled_std_seeds"], 2) for row in (ours, theirs)]
        table_rows.insert(ACCURACY_LABELS.index("HD95 px (cases)") + 1, ["HD95 pooled (medpy) px (seeds)", *pooled])
    per_class = board.per_class.set_index("model")
    for name in per_class.columns:
        table_rows.append([f"Dice: {name}", display.number(per_class.at[model, name]), display.number(per_class.at[against, name])])
    lines = [f"## {board.dataset} · {board.protocol}", "", markdown_table(_plain(table_rows, ["", model, against])), ""]
    if board.reference == against and math.isfinite(ours["delta_dice"]):
        lines.append(
            f"ΔDice ({model} − {against}) over {ours['paired_cases']} shared test cases: "
            f"{display.signed_with_interval(ours['delta_dice'], ours['delta_dice_ci_low'], ours['delta_dice_ci_high'])} "
            f"(95% bootstrap CI); Wilcoxon signed-rank p = {display.p_value(ours['p_value'])} "
            f"(this comparison alone, not adjusted; Holm across all models: {display.p_value(ours['p_holm'])})."
        )
    else:
        lines.append("No paired test: the two models share no evaluated test cases here.")
    return [*lines, ""]


def _cost_section(costs: pd.DataFrame, model: str, against: str) -> list[str]:
    """Per (device, precision, mode), both models' costs at each resolution (batch-1 profiles timed the default way)."""
    lines = []
    pair = costs[costs["model"].isin([model, against]) & costs["variant"].eq("") & costs["batch"].eq(1)]
    for (device, precision, mode), rows in pair.groupby(["device", "precision", "mode"], sort=True):
        columns = ["resolution"]
        for _, label, _ in COST_METRICS:
            columns += [f"{label}: {model}", f"{label}: {against}", "ratio"]
        table_rows = []
        for pixels, at_size in rows.groupby("pixels", sort=True):
            by_model = {row["model"]: row for _, row in at_size.iterrows()}
            cells = ["×".join(map(str, at_size["resolution"].iloc[0]))]
            for column, _, formatter in COST_METRICS:
                values = [_cost_value(by_model.get(name), column, formatter) for name in (model, against)]
                cells += [values[0][0], values[1][0], _ratio(values[0][1], values[1][1])]
            table_rows.append(cells)
        lines += [f"### {device} · {precision} · {mode}", "", markdown_table(_plain(table_rows, columns)), ""]
    return lines or ["No profile records of either model.", ""]


def _cost_value(row: pd.Series | None, column: str, formatter) -> tuple[str, float | None]:
    if row is None:
        return "not profiled", None
    value = row[column]
    if pd.notna(value):
        return formatter(value), float(value)
    return (row["status"] if row["status"] != "ok" else display.MISSING), None


def _ratio(ours: float | None, theirs: float | None) -> str:
    return f"{ours / theirs:.2f}×" if ours is not None and theirs else display.MISSING


def compare_markdown(leaderboard: Leaderboard, model: str, against: str) -> str:
    """The side-by-side page; ValueError naming the models that have records when either has none."""
    known = set(leaderboard.costs.get("model", [])) | {name for board in leaderboard.groups for name in board.table["model"]}
    missing = [name for name in (model, against) if name not in known]
    if missing:
        raise ValueError(
            f"no records of {', '.join(missing)}; models with records: {', '.join(sorted(known)) or 'none'}"
        )
    lines = [
        f"# {model} vs {against}",
        "",
        "Generated by `usemabench compare` from the record files. Conventions as in LEADERBOARD.md:",
        *[f"- {line}" for line in display.conventions(leaderboard.groups)],
        "",
    ]
    shared = [board for board in leaderboard.groups if {model, against} <= set(board.table["model"])]
    if not shared:
        lines += ["The two models have no dataset and protocol in common.", ""]
    for board in shared:
        lines += _group_section(board, model, against)
    lines += ["## Cost against resolution", "", *_cost_section(leaderboard.costs, model, against)]
    return "\n".join(lines).rstrip("\n") + "\n"
