"""The comparison page of `usemabench compare MODEL --against REF,...`: one model beside reference models.

Built from a Leaderboard of only the comparison's records (see `bench.select`), as a list of blocks that
render to Markdown here and to HTML in `usemabench.reports.compare_html`, so both say the same. Per dataset:
accuracy side by side, then paired statistics of MODEL against each reference over the test cases both
have (each case averaged over seeds first), with the smallest p the test can reach at that number of cases,
and the per-seed difference of mean Dice. Then costs per resolution, and what is missing with the command
that fills it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from usemabench.leaderboard import display
from usemabench.leaderboard.aggregate import GroupBoard, Leaderboard
from usemabench.leaderboard.markdown import markdown_table
from usemabench.leaderboard.stats import bootstrap_ci, holm, nonzero_pairs, paired_wilcoxon, smallest_wilcoxon_p
from usemabench.leaderboard.store import SHIPPED_LABEL

DEFAULT_PROTOCOL = "cpu"
DEFAULT_REFERENCES = ("usema_tiny",)
DEFAULT_SIZES = (128, 256, 512)  # inference profile sides beside the protocol's resolution
COST_METRICS = (("macs", "MACs", display.count), ("peak_memory_bytes", "peak memory", display.memory),
                ("latency_ms", "latency ms", display.milliseconds))
SIGNIFICANCE = 0.05
COMPARE_CONVENTIONS = (
    "Paired statistics: MODEL minus each reference over the test cases both have, each case's score averaged "
    "over seeds first (so a case counts once). p: two-sided Wilcoxon signed-rank test (exact below 50 cases); "
    "p (Holm): corrected across the references of one dataset. smallest possible p: 2·2^-n for n non-zero "
    "differences, what the exact test gives when every case moves the same way; where it is above 0.05 the "
    "test cannot show a difference at that level however large it is.",
    "ΔDice per seed: each seed's mean Dice minus the reference's at the same seed, mean ± std over the seeds both "
    "ran (seeds are not paired draws: a description of the spread, not a test).",
    "Only runs whose records carry this comparison's protocol hash, split hash, model config hash and data hash "
    "are shown; reference runs come from the package's shipped records (paths under usemabench-reference/) or "
    "from your records folder.",
)


@dataclass(frozen=True)
class Missing:
    """Something the page could not show, and the command that fills it."""

    what: str
    command: str


@dataclass(frozen=True)
class Block:
    """One piece of the page: a heading, a paragraph, a table, a bullet list, or a folded list ("details")."""

    kind: str
    text: str = ""
    level: int = 2
    table: display.Table | None = None
    items: tuple[str, ...] = field(default_factory=tuple)


def _plain(rows: list[list[str]], columns: list[str]) -> display.Table:
    return display.Table(columns, rows, [[None] * len(columns) for _ in rows], [False] + [True] * (len(columns) - 1))


def _accuracy_cells(row: pd.Series | None) -> list[str]:
    if row is None:
        return ["no run"] + [display.MISSING] * (len(ACCURACY_LABELS) - 1)
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


def _accuracy_table(board: GroupBoard, models: list[str]) -> display.Table:
    rows = board.table.set_index("model")
    present = {name: rows.loc[name] if name in rows.index else None for name in models}
    cells = {name: _accuracy_cells(row) for name, row in present.items()}
    table_rows = [[label, *[cells[name][index] for name in models]] for index, label in enumerate(ACCURACY_LABELS)]
    if display.has_hd95_pooled(board):
        pooled = [display.mean_std(row["hd95_pooled_mean"], row["hd95_pooled_std_seeds"], 2) if row is not None
                  else display.MISSING for row in present.values()]
        table_rows.insert(ACCURACY_LABELS.index("HD95 px (cases)") + 1, ["HD95 pooled (medpy) px (seeds)", *pooled])
    per_class = board.per_class.set_index("model")
    for name in per_class.columns:
        values = [display.number(per_class.at[model, name]) if model in per_class.index else display.MISSING for model in models]
        table_rows.append([f"Dice: {name}", *values])
    return _plain(table_rows, ["", *models])


def paired_tests(board: GroupBoard, model: str, references: list[str]) -> pd.DataFrame:
    """One row per reference with runs on this board: MODEL minus it over shared cases, and per seed."""
    scores = board.case_scores
    ours = scores[scores["model"].eq(model)]
    rows = []
    for reference in references:
        theirs = scores[scores["model"].eq(reference)]
        if ours.empty or theirs.empty:
            continue
        joined = ours.merge(theirs, on="case_id", suffixes=("", "_ref"))
        dice, hd95 = joined["dice"] - joined["dice_ref"], joined["hd95"] - joined["hd95_ref"]
        dice_low, dice_high = bootstrap_ci(dice)
        hd95_low, hd95_high = bootstrap_ci(hd95)
        per_seed = _per_seed_differences(board, model, reference)
        rows.append({
            "reference": reference, "cases": len(joined),
            "better": int((dice > 0).sum()), "worse": int((dice < 0).sum()), "tied": int((dice == 0).sum()),
            "delta_dice": float(dice.mean()) if len(dice) else np.nan, "dice_low": dice_low, "dice_high": dice_high,
            "p": paired_wilcoxon(joined["dice"], joined["dice_ref"]),
            "p_min": smallest_wilcoxon_p(nonzero_pairs(joined["dice"], joined["dice_ref"])),
            "delta_hd95": float(hd95.mean()) if len(hd95) else np.nan, "hd95_low": hd95_low, "hd95_high": hd95_high,
            "p_hd95": paired_wilcoxon(joined["hd95"], joined["hd95_ref"]),
            "seed_mean": float(np.mean(per_seed)) if per_seed else np.nan,
            "seed_std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else np.nan, "seeds": len(per_seed),
        })
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["p_holm"] = holm(frame["p"].to_numpy(dtype=float))
    return frame


def _per_seed_differences(board: GroupBoard, model: str, reference: str) -> list[float]:
    chosen = board.chosen_evals
    if chosen.empty:
        return []
    by_seed = {name: dict(zip(rows["seed"], rows["dice"])) for name, rows in chosen.groupby("model")}
    ours, theirs = by_seed.get(model, {}), by_seed.get(reference, {})
    return [float(ours[seed] - theirs[seed]) for seed in sorted(set(ours) & set(theirs))
            if np.isfinite(ours[seed]) and np.isfinite(theirs[seed])]


def _tests_table(tests: pd.DataFrame) -> display.Table:
    columns = ["vs", "cases", "better / worse / tied", "ΔDice [95% CI]", "p", "p (Holm)", "smallest possible p",
               "ΔHD95 px [95% CI]", "p (HD95)", "ΔDice per seed"]
    rows = []
    for _, row in tests.iterrows():
        per_seed = (f"{display.mean_std(row['seed_mean'], row['seed_std'])} (n = {row['seeds']})" if row["seeds"]
                    else display.MISSING)
        rows.append([
            row["reference"], str(row["cases"]), f"{row['better']} / {row['worse']} / {row['tied']}",
            display.signed_with_interval(row["delta_dice"], row["dice_low"], row["dice_high"]),
            display.p_value(row["p"]), display.p_value(row["p_holm"]), _exact(row["p_min"]),
            display.signed_with_interval(row["delta_hd95"], row["hd95_low"], row["hd95_high"], 2),
            display.p_value(row["p_hd95"]), per_seed,
        ])
    return _plain(rows, columns)


def _power_note(tests: pd.DataFrame) -> str:
    """A sentence when the number of cases rules out p < 0.05 before any data is seen."""
    limited = tests[tests["p_min"] > SIGNIFICANCE]
    if limited.empty:
        return ""
    floor = float(limited["p_min"].min())
    cases = int(limited["cases"].max())
    return (f"With {cases} paired test cases the exact two-sided Wilcoxon signed-rank test cannot give p below "
            f"{floor:.4g}: no difference on this dataset can reach p < {SIGNIFICANCE} however large it is. "
            "A decision needs a dataset with more test cases.")


def _board_blocks(board: GroupBoard, model: str, references: list[str]) -> list[Block]:
    models = [model, *references]
    blocks = [Block("heading", f"{board.dataset} · {board.protocol}"),
              Block("table", table=_accuracy_table(board, models))]
    tests = paired_tests(board, model, references)
    if tests.empty:
        blocks.append(Block("text", f"No paired test: {model} and the references share no evaluated test case here."))
        return blocks
    blocks += [Block("heading", "Paired statistics", level=3), Block("table", table=_tests_table(tests))]
    note = _power_note(tests)
    return blocks + ([Block("text", note)] if note else [])


def _cost_rows(costs: pd.DataFrame, models: list[str], baseline: str) -> list[tuple[str, display.Table]]:
    """Per (device, precision, mode): each model's batch-1 costs at each resolution and its ratio to `baseline`."""
    chosen = costs[costs["model"].isin(models) & costs["variant"].eq("") & costs["batch"].eq(1)] if len(costs) else costs
    tables = []
    for (device, precision, mode), rows in chosen.groupby(["device", "precision", "mode"], sort=True):
        columns = ["resolution", "model", *[label for _, label, _ in COST_METRICS], f"MACs ÷ {baseline}", f"latency ÷ {baseline}"]
        table_rows = []
        for _, at_size in rows.groupby("pixels", sort=True):
            by_model = {row["model"]: row for _, row in at_size.iterrows()}
            side = "×".join(map(str, at_size["resolution"].iloc[0]))
            for name in models:
                values = {column: _cost_value(by_model.get(name), column, formatter) for column, _, formatter in COST_METRICS}
                base = {column: _cost_value(by_model.get(baseline), column, formatter)[1] for column, _, formatter in COST_METRICS}
                table_rows.append([side, name, *[values[column][0] for column, _, _ in COST_METRICS],
                                   _ratio(values["macs"][1], base["macs"]), _ratio(values["latency_ms"][1], base["latency_ms"])])
        tables.append((f"{device} · {precision} · {mode}", _plain(table_rows, columns)))
    return tables


def _cost_value(row: pd.Series | None, column: str, formatter) -> tuple[str, float | None]:
    if row is None:
        return "not profiled", None
    value = row[column]
    if pd.notna(value):
        return formatter(value), float(value)
    return (row["status"] if row["status"] != "ok" else display.MISSING), None


def _ratio(ours: float | None, theirs: float | None) -> str:
    return f"{ours / theirs:.3g}×" if ours is not None and theirs else display.MISSING


def _exact(value: object) -> str:
    """A p floor as it is (0.0625, not 0.062): the reader compares it with 0.05."""
    return f"{value:.4g}" if isinstance(value, float) and np.isfinite(value) else display.MISSING


def _provenance(leaderboard: Leaderboard, models: list[str]) -> list[str]:
    """Per model, how many ok runs the page uses and where their records are."""
    lines = []
    for name in models:
        paths = []
        for board in leaderboard.groups:
            chosen = board.chosen_evals
            if len(chosen):
                paths += list(chosen.loc[chosen["model"].eq(name), "record_path"])
        shipped = sum(path.startswith(SHIPPED_LABEL + "/") for path in paths)
        parts = [f"{count} from {where}" for count, where in ((shipped, "the shipped reference records"),
                                                                (len(paths) - shipped, "your records folder")) if count]
        lines.append(f"{name}: {len(paths)} evaluated run(s)" + (f" ({', '.join(parts)})" if parts else ""))
    return lines


def compare_page(leaderboard: Leaderboard, model: str, references: list[str], protocol: str, missing: list[Missing]) -> list[Block]:
    """The page as blocks (see the module docstring); `missing` comes first, so nothing absent goes unnoticed."""
    models = [model, *references]
    blocks = [
        Block("heading", f"{model} vs {', '.join(references)} · protocol {protocol}", level=1),
        Block("text", "Generated by `usemabench compare` from the record files. Runs used:"),
        Block("list", items=tuple(_provenance(leaderboard, models))),
    ]
    if missing:
        blocks += [Block("heading", "Missing (and the command that fills it)"),
                   Block("list", items=tuple(f"{item.what}: `{item.command}`" for item in missing))]
    boards = [board for board in leaderboard.groups if set(models) & set(board.table["model"])]
    if not boards:
        blocks.append(Block("text", f"No evaluated run of {model} or the references with this comparison's identity."))
    for board in boards:
        blocks += _board_blocks(board, model, references)
    blocks.append(Block("heading", "Cost against resolution"))
    cost_tables = _cost_rows(leaderboard.costs, models, references[0])
    if not cost_tables:
        blocks.append(Block("text", "No profile records of these models."))
    for title, table in cost_tables:
        blocks += [Block("heading", title, level=3), Block("table", table=table)]
    blocks.append(Block("details", "How to read this page", items=(*COMPARE_CONVENTIONS, *display.conventions(leaderboard.groups))))
    return blocks


def page_markdown(blocks: list[Block]) -> str:
    """The page as GitHub-flavoured Markdown (the folded list becomes a plain section at the end)."""
    lines: list[str] = []
    for block in blocks:
        if block.kind == "heading":
            lines += ["#" * block.level + " " + block.text, ""]
        elif block.kind == "text":
            lines += [block.text, ""]
        elif block.kind == "table":
            lines += [markdown_table(block.table), ""]
        elif block.kind in ("list", "details"):
            lines += ([f"## {block.text}", ""] if block.kind == "details" else []) + [f"- {item}" for item in block.items] + [""]
    return "\n".join(lines).rstrip("\n") + "\n"
