"""Aggregation: per (dataset, protocol), one row per model, with seeds, cases, costs and paired tests.

Conventions (stated in the generated pages too):
- a case score is the mean over classes of that case's per-class score in one seed's eval;
- "over seeds" uses each seed's record-level mean; "over cases" averages each case over seeds first,
  so every test case counts once;
- the paired Wilcoxon test and the bootstrap CI of the difference use cases present for both models;
- every model run under a protocol on any dataset is expected on every dataset of that protocol, and
  every seed seen in a (dataset, protocol) is expected of every model there: absent runs are "missing";
- runs are pooled only when their protocol hash, split hash, data hash and model config hash agree: a name that
  covers several gets one board or row per hash, labelled with a short hash;
- costs come from batch-1 profiles; time and memory only from profiles on the run's device and precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from usemabench.leaderboard.stats import bootstrap_ci, holm, paired_wilcoxon
from usemabench.leaderboard.store import RecordSet

DEFAULT_REFERENCE = "usema_s"
NONE_LABEL = "(none)"
ERROR_CHARS = 100
HASH_CHARS = 6


@dataclass
class GroupBoard:
    """The leaderboard of one (dataset, protocol)."""

    dataset: str
    protocol: str
    reference: str | None
    reference_note: str
    table: pd.DataFrame
    per_class: pd.DataFrame
    runs: pd.DataFrame
    case_scores: pd.DataFrame
    chosen_evals: pd.DataFrame


@dataclass
class Leaderboard:
    """Every (dataset, protocol) board, sorted by name, and the profile costs of every model."""

    groups: list[GroupBoard]
    costs: pd.DataFrame
    record_set: RecordSet
    reference: str = DEFAULT_REFERENCE


def short_error(message: object) -> str:
    """First line of an error message, shortened so a table cell stays readable."""
    if not isinstance(message, str) or not message.strip():
        return ""
    line = message.strip().splitlines()[0]
    return line if len(line) <= ERROR_CHARS else line[: ERROR_CHARS - 1] + "…"


def pick_record(rows: pd.DataFrame) -> tuple[pd.Series | None, int]:
    """The record used for one run (an ok one first, then the last by path) and how many there were."""
    if rows.empty:
        return None, 0
    ordered = rows.assign(_ok=rows["status"].eq("ok")).sort_values(["_ok", "record_path"], kind="stable")
    return ordered.iloc[-1].drop("_ok"), len(rows)


def _group_label(value: object) -> str:
    return value if isinstance(value, str) and value else NONE_LABEL


def _with_labels(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for column in ("dataset", "protocol", "model"):
        frame[column] = frame[column].map(_group_label)
    return frame


def _split_by_hash(frame: pd.DataFrame, column: str, hash_column: str, kind: str, within: list[str]) -> pd.Series:
    """`column`, plus " [kind <short hash>]" where one value covers several hashes within `within`, so that
    runs of an edited protocol, another split, other data (content hash; "none" for records made before it)
    or another model config are never pooled under one name."""
    hashes = frame[hash_column].map(lambda value: value[:HASH_CHARS] if isinstance(value, str) and value else "none")
    counts = frame.assign(_hash=hashes).groupby([*within, column], sort=False, dropna=False)["_hash"].transform("nunique")
    return frame[column].where(counts.le(1), frame[column] + f" [{kind} " + hashes + "]")


def _comparable_labels(evals: pd.DataFrame, trains: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables with dataset, protocol and model labels that differ wherever the hashes do (see
    `_split_by_hash`), and `model_name`, the registered name behind a model label."""
    columns = ["dataset", "protocol", "model", "protocol_hash", "split_hash", "data_hash", "model_config_hash"]
    runs = _with_labels(pd.concat([evals.reindex(columns=columns), trains.reindex(columns=columns)], ignore_index=True))
    runs["model_name"] = runs["model"]
    runs["protocol"] = _split_by_hash(runs, "protocol", "protocol_hash", "protocol", [])
    runs["dataset"] = _split_by_hash(runs, "dataset", "split_hash", "split", ["protocol"])
    runs["dataset"] = _split_by_hash(runs, "dataset", "data_hash", "data", ["protocol"])
    runs["model"] = _split_by_hash(runs, "model", "model_config_hash", "config", ["dataset", "protocol"])
    labels = {column: runs[column].to_numpy() for column in ("dataset", "protocol", "model", "model_name")}
    return (
        evals.assign(**{column: values[: len(evals)] for column, values in labels.items()}),
        trains.assign(**{column: values[len(evals):] for column, values in labels.items()}),
    )


def _seed_label(seed: object) -> str:
    return "–" if seed is None or (isinstance(seed, float) and np.isnan(seed)) else str(int(seed))


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = np.asarray([value for value in values if value is not None and np.isfinite(value)], dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else float("nan")


def is_usema(name: str) -> bool:
    """Whether `name` is a USEMA-family model (registry when it knows the name, else the name prefix)."""
    try:
        from usemabench.zoo.registry import get_model_info

        return get_model_info(name).family == "usema"
    except (KeyError, ImportError):
        return name.startswith("usema")


def choose_reference(evaluated: list[str], preferred: str) -> tuple[str | None, str]:
    """The model every other is tested against, and a sentence saying how it was chosen."""
    if preferred in evaluated:
        return preferred, f"reference model: {preferred}"
    candidates = sorted((name for name in evaluated if is_usema(name)), key=lambda name: (len(name), name))
    if candidates:
        return candidates[0], f"reference model: {candidates[0]} ({preferred} has no evaluated run here)"
    return None, f"no paired tests: neither {preferred} nor another USEMA model has an evaluated run here"


def _case_scores(per_case: pd.DataFrame, record_paths: list[str]) -> pd.DataFrame:
    """Per case: mean over classes within each record, then mean over the records (seeds)."""
    rows = per_case[per_case["record_path"].isin(record_paths)]
    if rows.empty:
        return pd.DataFrame(columns=["case_id", "dice", "hd95"])
    per_record = rows.groupby(["record_path", "case_id"], sort=True)[["dice", "hd95"]].mean()
    return per_record.groupby("case_id", sort=True).mean().reset_index()


def _costs_at(
    costs: pd.DataFrame, model: str, resolution, device: str | None, precision: str | None, mode: str
) -> pd.Series | None:
    """The ok batch-1 profile of `model` at `resolution` in `mode`: default variant first, then on `device`,
    then at `precision` (the run's), so time and memory describe the run whenever such a profile exists.
    Only batch 1, so that latency and memory are those of one image at a time whatever else was profiled."""
    if costs.empty or resolution is None:
        return None
    match = costs[
        costs["model"].eq(model) & costs["resolution"].map(lambda value: value == resolution) & costs["mode"].eq(mode)
    ]
    match = match[match["status"].eq("ok") & match["batch"].eq(1)]
    if match.empty:
        return None
    preference = match.assign(
        _other_variant=match["variant"].ne(""), _other_device=match["device"].ne(device),
        _other_precision=match["precision"].ne(precision),
    )
    return preference.sort_values(["_other_variant", "_other_device", "_other_precision"], kind="stable").iloc[0]


def _rows_of_run(frame: pd.DataFrame, model: str, seed: int | None) -> pd.DataFrame:
    rows = frame[frame["model"].eq(model)]
    return rows[rows["seed"].isna()] if seed is None else rows[rows["seed"].eq(seed)]


def _run_status(eval_row: pd.Series | None, train_row: pd.Series | None) -> tuple[str, str]:
    """Short status of one (model, seed) run and the error that explains it."""
    if eval_row is not None and eval_row["status"] == "ok":
        return "ok", ""
    if eval_row is not None:
        return f"eval {eval_row['status']}", short_error(eval_row["error"])
    if train_row is not None and train_row["status"] != "ok":
        return f"train {train_row['status']}", short_error(train_row["error"])
    if train_row is not None:
        return "not evaluated", ""
    return "missing", ""


def _series_label(model: str, variant: str, batch: object) -> str:
    """The model, plus its variant and a batch other than 1: what one chart line measures."""
    tags = [variant] if variant else []
    if isinstance(batch, (int, float)) and not pd.isna(batch) and batch != 1:
        tags.append(f"batch {int(batch)}")
    return f"{model} [{', '.join(tags)}]" if tags else model


def profile_costs(record_set: RecordSet) -> pd.DataFrame:
    """One profile per (model, variant, resolution, device, precision, mode, batch), sorted for display.

    `series` names what a chart line or table row shows: the model, plus its variant when the profiler
    timed it a non-default way (e.g. full attention with plain matmul, "sdpa-math") and its batch when that
    is not 1, so profiles at another batch size draw their own line.
    """
    profiles = record_set.profiles
    if profiles.empty:
        return profiles.assign(pixels=pd.Series(dtype=float), series=pd.Series(dtype=object))
    frame = profiles[profiles["resolution"].notna()].copy()
    frame["model"] = frame["model"].map(_group_label)
    for column in ("device", "precision", "mode"):
        frame[column] = frame[column].map(lambda value: value if isinstance(value, str) and value else "unknown")
    frame["variant"] = frame["variant"].map(lambda value: value if isinstance(value, str) else "")
    frame["series"] = [_series_label(*row) for row in zip(frame["model"], frame["variant"], frame["batch"])]
    frame["pixels"] = frame["resolution"].map(lambda side: side[0] * side[1])
    key = ["model", "variant", "resolution", "device", "precision", "mode", "batch"]
    frame["_key"] = frame[key].astype(str).agg("|".join, axis=1)
    chosen = [pick_record(rows)[0] for _, rows in frame.groupby("_key", sort=True)]
    frame = pd.DataFrame(chosen).drop(columns="_key")
    order = ["device", "precision", "mode", "series", "pixels", "batch"]
    return frame.sort_values(order, kind="stable", na_position="last").reset_index(drop=True)


def _group_board(
    dataset: str,
    protocol: str,
    evals: pd.DataFrame,
    trains: pd.DataFrame,
    models: list[str],
    record_set: RecordSet,
    costs: pd.DataFrame,
    preferred_reference: str,
) -> GroupBoard:
    """One model row per name in `models`, with every expected (model, seed) run accounted for."""
    seeds = sorted({seed for seed in [*evals["seed"], *trains["seed"]] if seed is not None and not pd.isna(seed)})
    seed_keys: list[int | None] = [int(seed) for seed in seeds] or [None]
    run_rows, model_rows, class_rows, chosen_rows, scores_by_model = [], [], [], [], {}
    for model in models:
        ok_evals, statuses, notes, trains_used = [], [], [], []
        for seed in seed_keys:
            eval_row, eval_count = pick_record(_rows_of_run(evals, model, seed))
            train_row, _ = pick_record(_rows_of_run(trains, model, seed))
            status, error = _run_status(eval_row, train_row)
            if eval_count > 1:
                error = "; ".join(filter(None, [error, f"{eval_count} eval records, used {eval_row['record_path']}"]))
            used = eval_row if eval_row is not None else train_row
            run_rows.append({
                "model": model, "seed": _seed_label(seed), "status": status,
                "record": used["record_path"] if used is not None else "", "note": error,
            })
            statuses.append(status)
            if status == "ok":
                ok_evals.append(eval_row)
                chosen_rows.append(eval_row)
                if train_row is not None:
                    trains_used.append(train_row)
            elif status != "missing" or len(seed_keys) > 1:  # with one seed the row's status already says it
                notes.append(f"seed {_seed_label(seed)}: {status}" + (f" ({error})" if error else ""))
        scores = _case_scores(record_set.per_case, [row["record_path"] for row in ok_evals])
        model_rows.append(_model_row(model, ok_evals, trains_used, statuses, notes, scores, costs))
        class_rows.append(_per_class_row(model, ok_evals, record_set))
        if ok_evals:
            scores_by_model[model] = scores

    table = pd.DataFrame(model_rows)
    evaluated = [row["model"] for row in model_rows if row["seeds_ok"] > 0]
    reference, reference_note = choose_reference(evaluated, preferred_reference)
    table = _add_paired_tests(table, scores_by_model, reference)
    table = _rank(table)
    per_class = pd.DataFrame(class_rows).set_index("model").reindex(table["model"]).reset_index()
    case_scores = pd.concat(
        [scores.assign(model=model) for model, scores in sorted(scores_by_model.items())], ignore_index=True
    ) if scores_by_model else pd.DataFrame(columns=["case_id", "dice", "hd95", "model"])
    return GroupBoard(
        dataset=dataset,
        protocol=protocol,
        reference=reference,
        reference_note=reference_note,
        table=table,
        per_class=per_class,
        runs=pd.DataFrame(run_rows),
        case_scores=case_scores[["model", "case_id", "dice", "hd95"]],
        chosen_evals=pd.DataFrame(chosen_rows).reset_index(drop=True),
    )


def _model_row(
    model: str,
    ok_evals: list[pd.Series],
    trains_used: list[pd.Series],
    statuses: list[str],
    notes: list[str],
    scores: pd.DataFrame,
    costs: pd.DataFrame,
) -> dict:
    """The leaderboard row of one model: seeds, cases, status, and costs at its training resolution."""
    dice_mean, dice_std = _mean_std([row["dice"] for row in ok_evals])
    hd95_mean, hd95_std = _mean_std([row["hd95"] for row in ok_evals])
    # Only when every seed has it: a mean over the seeds that happen to carry it would mix seed sets.
    pooled = [row["hd95_pooled"] for row in ok_evals]
    every_seed = all(value is not None and np.isfinite(value) for value in pooled)
    hd95_pooled_mean, hd95_pooled_std = _mean_std(pooled) if every_seed else (float("nan"), float("nan"))
    iou_mean, _ = _mean_std([row["iou"] for row in ok_evals])
    nsd_mean, _ = _mean_std([row["nsd"] for row in ok_evals])
    dice_low, dice_high = bootstrap_ci(scores["dice"]) if len(scores) else (float("nan"), float("nan"))
    seeds_ok = sum(status == "ok" for status in statuses)
    if seeds_ok == len(statuses):
        status = "ok"
    elif seeds_ok:
        status = "partial"
    elif all(status == "missing" for status in statuses):
        status = "missing"
    elif all(status in ("missing", "not evaluated") for status in statuses):
        status = "not evaluated"
    else:
        status = "failed"
    resolutions = sorted({row["resolution"] for row in ok_evals if row["resolution"] is not None})
    resolution = resolutions[0] if resolutions else None
    if len(resolutions) > 1:
        notes.append(f"evaluated at {len(resolutions)} resolutions; costs at the smallest")
    device = next((row["device"] for row in [*trains_used, *ok_evals] if isinstance(row["device"], str)), None)
    precision = next((row["precision"] for row in [*trains_used, *ok_evals] if isinstance(row["precision"], str)), None)
    infer = _costs_at(costs, model, resolution, device, precision, "infer")
    train_profile = _costs_at(costs, model, resolution, device, precision, "train")
    params = next((row["params"] for row in trains_used if pd.notna(row["params"])), None)
    if params is None and infer is not None:
        params = infer["params"]
    train_memory = max((row["peak_memory_bytes"] for row in trains_used if pd.notna(row["peak_memory_bytes"])), default=None)
    memory_source = "train run" if train_memory is not None else ""
    # Counts (params, MACs) hold on any device; time and memory only on the run's device and precision.
    if train_profile is not None and (train_profile["device"], train_profile["precision"]) != (device, precision):
        train_profile = None
    timed_infer = infer if infer is not None and (infer["device"], infer["precision"]) == (device, precision) else None
    if train_memory is None and train_profile is not None and pd.notna(train_profile["peak_memory_bytes"]):
        train_memory, memory_source = train_profile["peak_memory_bytes"], "profile"
    nan = float("nan")
    return {
        "model": model,
        "status": status,
        "seeds_ok": seeds_ok,
        "seeds_expected": len(statuses),
        "dice_mean": dice_mean,
        "dice_std_seeds": dice_std,
        "dice_cases_mean": float(scores["dice"].mean()) if len(scores) else nan,
        "dice_cases_std": float(scores["dice"].std(ddof=1)) if len(scores) > 1 else nan,
        "dice_ci_low": dice_low,
        "dice_ci_high": dice_high,
        "hd95_mean": hd95_mean,
        "hd95_std_seeds": hd95_std,
        "hd95_cases_mean": float(scores["hd95"].mean()) if len(scores) else nan,
        "hd95_cases_std": float(scores["hd95"].std(ddof=1)) if len(scores) > 1 else nan,
        "hd95_pooled_mean": hd95_pooled_mean,
        "hd95_pooled_std_seeds": hd95_pooled_std,
        "iou_mean": iou_mean,
        "nsd_mean": nsd_mean,
        "cases": len(scores),
        "resolution": "x".join(map(str, resolution)) if resolution else "",
        "params": float(params) if params is not None else nan,
        "macs": float(infer["macs"]) if infer is not None and pd.notna(infer["macs"]) else nan,
        "peak_train_memory_bytes": float(train_memory) if train_memory is not None else nan,
        "peak_train_memory_source": memory_source,
        "latency_ms": float(timed_infer["latency_ms"]) if timed_infer is not None and pd.notna(timed_infer["latency_ms"]) else nan,
        "cost_device": timed_infer["device"] if timed_infer is not None else "",
        "note": "; ".join(notes),
    }


def _per_class_row(model: str, ok_evals: list[pd.Series], record_set: RecordSet) -> dict:
    """Mean over seeds of each class's Dice (record-level; from the per-case CSV when a record has none)."""
    per_seed = []
    for row in ok_evals:
        values = row["dice_per_class"]
        if not values:
            rows = record_set.per_case[record_set.per_case["record_path"].eq(row["record_path"])]
            values = rows.groupby("class", sort=True)["dice"].mean().to_dict()
        per_seed.append(values)
    classes = sorted({name for values in per_seed for name in values})
    result = {"model": model}
    for name in classes:
        result[name] = _mean_std([values.get(name, np.nan) for values in per_seed])[0]
    return result


def _add_paired_tests(table: pd.DataFrame, scores_by_model: dict[str, pd.DataFrame], reference: str | None) -> pd.DataFrame:
    """Dice difference to the reference over shared cases, its bootstrap CI, Wilcoxon p and Holm-adjusted p."""
    reference_scores = scores_by_model.get(reference) if reference else None
    tests = []
    for model in table["model"]:
        scores = scores_by_model.get(model)
        test = {"paired_cases": 0, "delta_dice": np.nan, "delta_dice_ci_low": np.nan, "delta_dice_ci_high": np.nan, "p_value": np.nan}
        if reference_scores is not None and scores is not None and model != reference:
            joined = scores.merge(reference_scores, on="case_id", suffixes=("", "_reference"))
            difference = (joined["dice"] - joined["dice_reference"]).to_numpy(dtype=float)
            low, high = bootstrap_ci(difference)
            test = {
                "paired_cases": len(joined),
                "delta_dice": float(np.nanmean(difference)) if np.isfinite(difference).any() else np.nan,
                "delta_dice_ci_low": low,
                "delta_dice_ci_high": high,
                "p_value": paired_wilcoxon(joined["dice"], joined["dice_reference"]),
            }
        tests.append(test)
    tests_frame = pd.DataFrame(tests, index=table.index, columns=list(tests[0]) if tests else None)
    table = pd.concat([table, tests_frame], axis=1)
    table["p_holm"] = holm(table["p_value"].to_numpy(dtype=float)) if len(table) else []
    table["is_reference"] = table["model"].eq(reference)
    return table


def _rank(table: pd.DataFrame) -> pd.DataFrame:
    """Rank by mean Dice over seeds (ties share the best rank); unranked rows last, each block by name."""
    table = table.copy()
    table["rank"] = table["dice_mean"].rank(ascending=False, method="min")
    table["_unranked"] = table["rank"].isna()
    table = table.sort_values(["_unranked", "rank", "model"], kind="stable").drop(columns="_unranked")
    columns = ["rank", *[column for column in table.columns if column != "rank"]]
    return table[columns].reset_index(drop=True)


def _expected_models(protocol_runs: pd.DataFrame, board_runs: pd.DataFrame) -> list[str]:
    """A board's rows: its own model labels, plus, by name, each model of the protocol absent from it."""
    absent = set(protocol_runs["model_name"]) - set(board_runs["model_name"])
    return sorted(set(board_runs["model"]) | absent)


def aggregate(record_set: RecordSet, reference: str = DEFAULT_REFERENCE) -> Leaderboard:
    """All (dataset, protocol) boards, sorted by name, and the profile cost table."""
    costs = profile_costs(record_set)
    evals, trains = _comparable_labels(record_set.evals, record_set.trains)
    columns = ["dataset", "protocol", "model", "model_name"]
    runs = pd.concat([evals[columns], trains[columns]])
    groups = []
    for (dataset, protocol), board_runs in runs.groupby(["dataset", "protocol"], sort=True):
        models = _expected_models(runs[runs["protocol"].eq(protocol)], board_runs)
        group_evals = evals[evals["dataset"].eq(dataset) & evals["protocol"].eq(protocol)]
        group_trains = trains[trains["dataset"].eq(dataset) & trains["protocol"].eq(protocol)]
        groups.append(_group_board(dataset, protocol, group_evals, group_trains, models, record_set, costs, reference))
    return Leaderboard(groups=groups, costs=costs, record_set=record_set, reference=reference)
