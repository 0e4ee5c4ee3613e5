"""`usemabench compare MODEL` (alias `bench`): the user's model beside reference models, in one command.

A run (model, dataset, seed) counts for the comparison only when an ok eval record of it carries exactly
this comparison's identity: protocol hash, split hash, model config hash and data hash (`dataset.data_hash`,
the content hash of the data's files and decoding options; equal or no match). Such records are looked up in
the user's records folder and in the package's shipped reference records (`store.shipped_records_dir`),
so the reference is never retrained when its results ship with the package. A near miss (another protocol
version, split or data) is never pooled: that run is trained again here through `run_experiment`. Then
every model is profiled (inference at the chosen sizes and at the protocol's resolution, one training
step at the protocol's resolution) on this device, unless this device already has those profiles. The
page is a pure function of the matched records (`compare.compare_page`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from usemabench.datasets import DatasetError
from usemabench.leaderboard.aggregate import short_error
from usemabench.leaderboard.compare import Missing
from usemabench.core.records import device_name, model_entry
from usemabench.leaderboard.store import RecordSet
from usemabench.profiler.profile import profile_sweep
from usemabench.runners.defaults import RECORDS_DIR
from usemabench.runners.errors import UsageError
from usemabench.runners.experiment import ExperimentRequest, prepare, run_experiment
from usemabench.runners.precision import resolve_device

PROFILE_SETTINGS = {"repeats": 5, "warmup": 2, "batch": 1}
PROFILE_RESULTS = ("ok", "oom", "unsupported")  # a size that ran out of memory or that a model refuses is a result too


@dataclass(frozen=True)
class Identity:
    """What a record must carry to be one run of this comparison: `matches` compares the names and hashes; the
    resolution, precision and channels are what profiling and the printed commands need."""

    model: str
    dataset: str
    protocol_hash: str
    split_hash: str
    data_hash: str | None
    config_hash: str
    resolution: tuple[int, int]
    precision: str
    in_channels: int
    num_classes: int

    def matches(self, row: pd.Series) -> bool:
        return (
            row["model"] == self.model and row["dataset"] == self.dataset and row["protocol_hash"] == self.protocol_hash
            and row["split_hash"] == self.split_hash and row["model_config_hash"] == self.config_hash
            and _optional(row.get("data_hash")) == self.data_hash
        )


def _optional(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Comparison:
    """What the user asked for; `command_prefix` is how they call usemabench (with their --model-module)."""

    model: str
    references: tuple[str, ...]
    datasets: tuple[str, ...]
    protocol: str  # as given: a packaged name or a JSON file
    protocol_name: str
    seeds: tuple[int, ...]
    sizes: tuple[int, ...]
    records_dir: Path
    runs_dir: Path
    device: str = "auto"
    progress: bool = True
    command_prefix: str = "usemabench"  # how the user calls usemabench, with their --model-module options

    def records_option(self) -> str:
        """` --records-dir X` when the records go elsewhere than the commands' default, so a printed command fills this page."""
        return "" if Path(self.records_dir) == RECORDS_DIR else f" --records-dir {self.records_dir}"

    @property
    def models(self) -> tuple[str, ...]:
        return (self.model, *[name for name in self.references if name != self.model])

    def request(self, model: str, dataset: str, seed: int) -> ExperimentRequest:
        return ExperimentRequest(model=model, dataset=dataset, protocol=self.protocol, seed=seed, runs_dir=self.runs_dir,
                                 records_dir=self.records_dir, device=self.device, progress=self.progress)


@dataclass
class Plan:
    """For each (model, dataset): its identity; for each (model, dataset, seed): the matching eval record or none."""

    comparison: Comparison
    identities: dict[tuple[str, str], Identity]
    found: dict[tuple[str, str, int], str]
    skipped_datasets: dict[str, str] = field(default_factory=dict)  # default datasets not usable here, and why

    def missing(self) -> list[tuple[str, str, int]]:
        return [(model, dataset, seed) for (model, dataset) in self.identities for seed in self.comparison.seeds
                if (model, dataset, seed) not in self.found]


def identity_of(request: ExperimentRequest) -> Identity:
    """The identity `request` would write into its records, computed without training (hashes the data)."""
    prepared = prepare(request)
    entry = prepared.dataset_entry("test")  # exactly what the run's eval record will carry
    return Identity(
        model=request.model, dataset=prepared.spec.name, protocol_hash=prepared.protocol.hash,
        split_hash=entry["split_hash"], data_hash=_optional(entry.get("data_hash")),
        config_hash=model_entry(request.model, prepared.model_config)["config_hash"],
        resolution=tuple(prepared.protocol.resolution), precision=prepared.precision,
        in_channels=prepared.spec.in_channels, num_classes=prepared.spec.num_classes,
    )


def matching_evals(record_set: RecordSet, identity: Identity, seed: int) -> pd.DataFrame:
    """The ok eval rows of one run of `identity` at `seed`, in path order."""
    evals = record_set.evals
    rows = evals[evals["status"].eq("ok") & evals["seed"].eq(seed)]
    return rows[[identity.matches(row) for _, row in rows.iterrows()]] if len(rows) else rows


def default_datasets(record_set: RecordSet, comparison: Comparison) -> list[str]:
    """Datasets with an ok eval record of the first reference under the protocol's name, in name order."""
    evals = record_set.evals
    rows = evals[evals["status"].eq("ok") & evals["model"].eq(comparison.references[0]) & evals["protocol"].eq(comparison.protocol_name)]
    return sorted(set(rows["dataset"].dropna()))


def plan(comparison: Comparison, record_set: RecordSet, log: Callable[[str], None] = print) -> Plan:
    """Identities of every (model, dataset) and the records that already hold each seed's run.

    With no datasets given, the datasets the first reference has records on under the protocol are used, each
    only when its data is here (one that is not is named in `skipped_datasets`, not an error).
    """
    datasets, chosen_by_default = list(comparison.datasets), not comparison.datasets
    if chosen_by_default:
        datasets = default_datasets(record_set, comparison)
        if not datasets:
            raise UsageError(
                f"no records of {comparison.references[0]} under protocol {comparison.protocol_name!r} to compare with: "
                "name the data with --dataset (see `usemabench datasets`)"
            )
    identities, skipped = {}, {}
    for dataset in datasets:
        try:
            for model in comparison.models:
                identity = identity_of(comparison.request(model, dataset, comparison.seeds[0]))
                identities[(model, identity.dataset)] = identity
        except DatasetError as error:
            if not chosen_by_default:
                raise
            skipped[dataset] = str(error)
            log(f"compare: skipped {dataset}: {error}")
    if not identities:
        raise UsageError(f"none of the reference datasets is usable here ({'; '.join(f'{k}: {v}' for k, v in skipped.items())})")
    found = {}
    for (model, dataset), identity in identities.items():
        for seed in comparison.seeds:
            rows = matching_evals(record_set, identity, seed)
            if len(rows):
                found[(model, dataset, seed)] = rows["record_path"].iloc[-1]
    return Plan(replace(comparison, datasets=tuple(sorted({d for _, d in identities}))), identities, found, skipped)


def run_missing(plan: Plan, log: Callable[[str], None] = print) -> list[tuple[str, str, int, str]]:
    """Train and evaluate every run the plan lacks; (model, dataset, seed, status) of each."""
    results = []
    for model, dataset, seed in plan.missing():
        log(f"compare: training {model} on {dataset}, protocol {plan.comparison.protocol_name}, seed {seed}")
        outcome = run_experiment(plan.comparison.request(model, dataset, seed))
        detail = outcome.error or f"dice {outcome.metrics['dice']['mean']:.4f}"
        log(f"compare: {outcome.status} {model} on {dataset}, seed {seed}: {detail.splitlines()[0]}")
        results.append((model, dataset, seed, outcome.status))
    return results


def profile_plan(plan: Plan) -> dict[str, tuple[int, ...]]:
    """Inference at the chosen sizes and the protocol's resolution; training at the protocol's resolution."""
    side = next(iter(plan.identities.values())).resolution[0]
    return {"infer": tuple(sorted({*plan.comparison.sizes, side})), "train": (side,)}


def profile_identity(plan: Plan, model: str) -> Identity:
    """Models are profiled once, with the channels and classes of the first dataset."""
    return plan.identities[(model, plan.comparison.datasets[0])]


def missing_profiles(plan: Plan, record_set: RecordSet) -> dict[str, dict[str, list[int]]]:
    """{model: {mode: [sides]}} with no batch-1 profile result of this model config on this device and precision."""
    here = device_name(str(resolve_device(plan.comparison.device)))
    profiles = record_set.profiles
    missing: dict[str, dict[str, list[int]]] = {}
    for model in plan.comparison.models:
        identity = profile_identity(plan, model)
        mine = profiles[
            profiles["status"].isin(PROFILE_RESULTS) & profiles["model_config_hash"].eq(identity.config_hash) & profiles["device"].eq(here)
            & profiles["precision"].eq(identity.precision) & profiles["batch"].eq(1) & profiles["variant"].isna()
        ] if len(profiles) else profiles
        have = {(row["mode"], tuple(row["resolution"])) for _, row in mine.iterrows() if row["resolution"] is not None}
        for mode, sides in profile_plan(plan).items():
            absent = [side for side in sides if (mode, (side, side)) not in have]
            if absent:
                missing.setdefault(model, {})[mode] = absent
    return missing


def profile_missing(plan: Plan, missing: dict[str, dict[str, list[int]]], log: Callable[[str], None] = print) -> list[dict]:
    """Profile what `missing_profiles` found absent; records go to `<records_dir>/profile`."""
    made = []
    for model, modes in missing.items():
        identity = profile_identity(plan, model)
        for mode, sides in modes.items():
            made += profile_sweep(
                [model], sides, modes=(mode,), records_dir=Path(plan.comparison.records_dir) / "profile", log=log,
                device=plan.comparison.device, precision=identity.precision, in_channels=identity.in_channels,
                num_classes=identity.num_classes, **PROFILE_SETTINGS,
            )
    return made


def select(record_set: RecordSet, plan: Plan) -> RecordSet:
    """Only this comparison's records: the matching runs (eval and train) and the models' own profiles."""
    def runs(frame: pd.DataFrame) -> pd.DataFrame:
        if frame.empty:
            return frame
        keep = [
            any(identity.matches(row) for identity in plan.identities.values()) and row["seed"] in plan.comparison.seeds
            for _, row in frame.iterrows()
        ]
        return frame[keep].reset_index(drop=True)

    evals = runs(record_set.evals)
    configs = {profile_identity(plan, model).config_hash for model in plan.comparison.models}
    profiles = record_set.profiles
    profiles = profiles[profiles["model_config_hash"].isin(configs)].reset_index(drop=True) if len(profiles) else profiles
    per_case = record_set.per_case[record_set.per_case["record_path"].isin(evals["record_path"])].reset_index(drop=True)
    return replace(record_set, evals=evals, trains=runs(record_set.trains), profiles=profiles, per_case=per_case,
                   benches=record_set.benches.iloc[0:0])


def run_command(model: str, protocol: str, dataset: str, seed: int, prefix: str) -> str:
    return f"{prefix} run --model {model} --dataset {dataset} --protocol {protocol} --seed {seed}"


def profile_command(models: Sequence[str], mode: str, sides: Sequence[int], identity: Identity, device: str, prefix: str) -> str:
    return (f"{prefix} profile --models {','.join(models)} --resolutions {','.join(map(str, sides))} --mode {mode} "
            f"--device {device} --precision {identity.precision} --in-channels {identity.in_channels} "
            f"--num-classes {identity.num_classes}")


def missing_items(plan: Plan, record_set: RecordSet) -> list[Missing]:
    """Every run, dataset and profile the page lacks, each with the command that fills it."""
    comparison = plan.comparison
    items = [Missing(f"dataset {name} (the reference has records there) is not usable here: {reason}",
                     f"usemabench datasets download {name}") for name, reason in sorted(plan.skipped_datasets.items())]
    for model, dataset, seed in plan.missing():
        identity = plan.identities[(model, dataset)]
        failed = [row for frame in (record_set.evals, record_set.trains) if len(frame)
                  for _, row in frame[frame["seed"].eq(seed) & frame["status"].ne("ok")].iterrows() if identity.matches(row)]
        reason = (f"{failed[-1]['kind']} {failed[-1]['status']}: {short_error(failed[-1]['error'])}" if failed
                  else "no record with this protocol, split, model config and data")
        items.append(Missing(f"{model} on {dataset}, seed {seed}: {reason}",
                             run_command(model, comparison.protocol, dataset, seed, comparison.command_prefix)
                             + comparison.records_option()))
    device = resolve_device(comparison.device).type
    for model, modes in missing_profiles(plan, record_set).items():
        identity = profile_identity(plan, model)
        for mode, sides in modes.items():
            items.append(Missing(f"{model}: no {mode} profile at {', '.join(map(str, sides))} px on this device",
                                 profile_command([model], mode, sides, identity, device, comparison.command_prefix)
                                 + (f" --records-dir {Path(comparison.records_dir) / 'profile'}" if comparison.records_option() else "")))
    return items
