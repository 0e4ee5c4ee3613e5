"""Model cards generated from a run's records: what was trained, on what, how well, at what cost.

The card is a pure function of the records and the registry entry (no timestamps), so pushing the same
run twice gives the same card. Its YAML metadata carries `model-index` (Hub evaluation results) and
`usemabench.weights_sha256`, which `usemabench.hub` verifies on load.
"""

from __future__ import annotations

import csv
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from usemabench.datasets import get_dataset_spec, list_datasets
from usemabench.leaderboard.stats import bootstrap_ci
from usemabench.zoo.registry import ModelInfo

USEMA_CITATIONS = (
    "Dayag, Tran, Xin. USEMA: a Scalable Efficient Mamba Like Attention for Medical Image Segmentation. arXiv:2605.11131 (2026).",
    "Tran, Xue, Zhang, Lyu, Zheng, Qi, Xin. SEMA: a Scalable and Efficient Mamba like Attention via Token Localization and Averaging. arXiv:2506.08297 (2025).",
)
CARD_METRICS = ("dice", "iou", "hd95", "nsd")


def per_case_means(per_case_csv: Path, metric: str) -> list[float]:
    """Per-case values of `metric`, averaged over foreground classes, from the evaluator's CSV."""
    by_case: dict[str, list[float]] = {}
    with open(per_case_csv, newline="", encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            value = row.get(metric, "")
            if value not in ("", "nan"):
                by_case.setdefault(row["case_id"], []).append(float(value))
    return [sum(values) / len(values) for _, values in sorted(by_case.items())]


def metric_summary(eval_record: dict, record_dir: Path) -> dict[str, dict[str, float]]:
    """Mean and bootstrap 95% CI over test cases for each metric present in the eval record."""
    per_case_file = (eval_record.get("files") or {}).get("per_case")
    summary: dict[str, dict[str, float]] = {}
    for metric in CARD_METRICS:
        entry = eval_record["metrics"].get(metric)
        if entry is None:
            continue
        mean = entry["mean"] if isinstance(entry, dict) else entry
        low = high = float("nan")
        if per_case_file and (record_dir / per_case_file).is_file():
            low, high = bootstrap_ci(per_case_means(record_dir / per_case_file, metric))
        summary[metric] = {"mean": float(mean), "ci_low": low, "ci_high": high}
    return summary


def dataset_terms(dataset: dict) -> tuple[str, str]:
    """(license, citation) of a record's dataset: records keep only its name, so the registry supplies them.

    ("unknown", "") for data not in the registry (an ad-hoc folder, even one given a registered name with
    `?name=`: its source differs), whose terms usemabench cannot know.
    """
    name = dataset.get("name", "")
    if name not in list_datasets():
        return "unknown", ""
    spec = get_dataset_spec(name)
    if dataset.get("source", spec.source) not in (spec.source, *spec.split_sources.values()):
        return "unknown", ""
    return spec.license, spec.citation


def _format_interval(values: dict[str, float]) -> str:
    if values["ci_low"] != values["ci_low"]:  # NaN: no interval (too few cases)
        return f"{values['mean']:.4f}"
    return f"{values['mean']:.4f} [{values['ci_low']:.4f}, {values['ci_high']:.4f}]"


def build_model_card(
    info: ModelInfo,
    config: dict,
    train_record: dict | None,
    eval_record: dict | None,
    eval_record_dir: Path | None = None,
) -> ModelCard:
    """A Hub model card for weights of `info.name` trained as `train_record` says, scored as `eval_record` says."""
    dataset = (eval_record or train_record or {}).get("dataset") or {}
    protocol = (train_record or {}).get("protocol") or {}
    summary = metric_summary(eval_record, eval_record_dir or Path(".")) if eval_record else {}
    dataset_name = dataset.get("name", "unknown")
    data_license, data_citation = dataset_terms(dataset)
    eval_results = [
        EvalResult(
            task_type="image-segmentation",
            dataset_type=dataset_name,
            dataset_name=dataset_name,
            dataset_split=dataset.get("split", "test"),
            metric_type=metric,
            metric_value=round(values["mean"], 6),
        )
        for metric, values in summary.items()
    ]
    data = ModelCardData(
        library_name="usemabench",
        license="unknown" if data_license == "unknown" else "other",  # dataset terms are free text, not Hub ids
        tags=["medical-image-segmentation", "usemabench", info.family, info.name],
        model_name=info.name,
        eval_results=eval_results or None,
        usemabench={"name": info.name, "config": config, "dataset": dataset, "protocol": protocol},
    )
    cost = (train_record or {}).get("cost") or {}
    if train_record is None:
        provenance = f"`{info.name}` ({info.family}) weights saved by usemabench; no training record is attached."
    else:
        provenance = (
            f"`{info.name}` ({info.family}) trained with usemabench on **{dataset_name}** with protocol "
            f"**{protocol.get('name', 'unknown')}** (hash `{protocol.get('hash', '-')}`), seed {train_record.get('seed')}."
        )
    lines = [
        f"# {info.name}",
        "",
        provenance,
        "",
        "```python",
        "from usemabench import create_model",
        f'model = create_model("{info.name}", in_channels={config["in_channels"]}, num_classes={config["num_classes"]}, pretrained="ORG/REPO")',
        "```",
        "",
        "## Results (test split; mean over cases, bootstrap 95% CI)",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {metric} | {_format_interval(values)} |" for metric, values in summary.items()],
        "",
        "Rules: Dice/IoU over foreground classes; both empty -> Dice 1, HD95 0; one empty -> Dice 0, "
        "HD95 = image diagonal. HD95 and NSD are in pixels (the datasets carry no physical spacing).",
        "",
        "## License",
        "",
        f"Trained on **{dataset_name}**, whose terms are: {data_license}. Use of these weights may be bound by them."
        if dataset
        else "No record names the training data, so its terms are unknown.",
        "",
        "## Cost at the training resolution",
        "",
        *[f"- {key}: {value}" for key, value in sorted(cost.items()) if not isinstance(value, dict)],
        "",
        "## Architecture",
        "",
        f"Paper: {info.paper}. Reference code: {info.code or '-'}.",
        f"Size policy: {info.size_policy} to a multiple of {info.size_divisor}. {info.resolution_policy}",
    ]
    if info.reconstructed:
        lines += ["", "Reconstructed (not given by the paper; our choices):", *[f"- {item}" for item in info.reconstructed]]
    citations = [*USEMA_CITATIONS, info.paper]
    if data_citation:
        citations.append(data_citation)
    lines += ["", "## Citations", "", *[f"- {citation}" for citation in dict.fromkeys(citations)], ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n" + "\n".join(lines))
