"""A grid of experiments (models x datasets x seeds under one protocol), locally or on SLURM.

A combination is skipped when an eval record with status `ok` for the same model, dataset, protocol
(name and hash) and seed is already in `records_dir`; a failed one is run again (its run folder resumes
where it stopped). Unknown models and datasets stop the sweep before anything runs, all named in one
error, so that a typo never leaves half a grid. A failing combination is recorded as such
(`run_experiment` writes the failure records) and the sweep goes on. With `--slurm`, each combination is one job submitted through
`submitit`; jobs write their records themselves, so `usemabench sweep` can be rerun to fill gaps. A job is a
fresh process: it imports the `--model-module`s again before it runs, so users' models work there too.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from usemabench.datasets import DatasetError, get_dataset_spec
from usemabench.core.records import read_records
from usemabench.runners.errors import UsageError, registered_model
from usemabench.runners.experiment import ExperimentOutcome, ExperimentRequest, run_experiment
from usemabench.runners.protocol import load_protocol
from usemabench.zoo.registry import import_model_module


@dataclass(frozen=True)
class SweepItem:
    request: ExperimentRequest
    status: str  # "skipped" | "ok" | "failed" | "oom" | "submitted"
    detail: str = ""


def combinations(models: Sequence[str], datasets: Sequence[str], seeds: Sequence[int], template: ExperimentRequest) -> list[ExperimentRequest]:
    """Every (dataset, model, seed), dataset-major so that each dataset's results fill in together."""
    return [replace(template, model=model, dataset=dataset, seed=seed) for dataset, model, seed in itertools.product(datasets, models, seeds)]


def completed(records_dir: Path, protocol_hash: str) -> set[tuple[str, str, str, int]]:
    """(model, dataset, protocol name, seed) of every eval record with status ok under this protocol hash (a
    sweep runs no folds, so the record of a `--fold` run completes nothing here)."""
    if not Path(records_dir).is_dir():
        return set()
    records, _ = read_records(records_dir, kind="eval")
    return {
        (record["model"]["name"], record["dataset"]["name"], record["protocol"]["name"], record["seed"])
        for record in records
        if record["status"] == "ok" and record.get("protocol") and record["protocol"].get("hash") == protocol_hash
        and record.get("model") and record.get("dataset") and record["dataset"].get("fold") is None
    }


def _done(request: ExperimentRequest, finished: set, protocol_name: str) -> bool:
    # A registered dataset is its name; an ad-hoc source (folder:..., a path) resolves to its inferred name.
    return (request.model, get_dataset_spec(request.dataset).name, protocol_name, request.seed) in finished


def check_requests(requests: Sequence[ExperimentRequest]) -> None:
    """Refuse the sweep, naming every unknown model and dataset: found mid-sweep, one would stop a partial grid."""
    problems = []
    for model in dict.fromkeys(request.model for request in requests):
        try:
            registered_model(model)
        except UsageError as error:
            problems.append(str(error).rstrip("."))
    for dataset in dict.fromkeys(request.dataset for request in requests):
        try:
            get_dataset_spec(dataset)
        except DatasetError as error:
            problems.append(str(error))
    if problems:
        raise UsageError(f"sweep not started: {'; '.join(problems)}")


def run_sweep(
    requests: Sequence[ExperimentRequest],
    *,
    slurm: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> list[SweepItem]:
    """Run (or submit) every request not already done; never stops at a failing one."""
    check_requests(requests)
    items: list[SweepItem] = []
    pending: list[ExperimentRequest] = []
    finished: dict[tuple[Path, str], set] = {}
    for request in requests:
        protocol = load_protocol(request.protocol)
        key = (Path(request.records_dir), protocol.hash)
        if key not in finished:
            finished[key] = completed(*key)
        if _done(request, finished[key], protocol.name):
            items.append(SweepItem(request, "skipped", "an ok eval record exists"))
            log(f"skip   {_label(request)} (record exists)")
        else:
            pending.append(request)
    if slurm is not None:
        return items + submit_to_slurm(pending, log=log, **slurm)
    for request in pending:
        log(f"run    {_label(request)}")
        try:
            outcome = run_experiment(request)
        except Exception as error:  # noqa: BLE001 - bad arguments for one combination must not stop the rest
            outcome = ExperimentOutcome("failed", error=f"{type(error).__name__}: {error}")
        detail = outcome.error or f"dice {outcome.metrics['dice']['mean']:.4f}"
        items.append(SweepItem(request, outcome.status, detail))
        log(f"{outcome.status:<6} {_label(request)}: {detail.splitlines()[0]}")
    return items


def submit_to_slurm(
    requests: Sequence[ExperimentRequest],
    *,
    folder: str | Path = "runs/slurm",
    log: Callable[[str], None] = print,
    cluster: str | None = None,
    model_modules: Sequence[str] = (),
    **parameters: Any,
) -> list[SweepItem]:
    """One submitit job per request; `parameters` go to `executor.update_parameters` (timeout_min, slurm_partition, ...).

    `model_modules` (the `--model-module` values) are imported in each job before it runs; `.py` paths are made
    absolute here, module names are looked up in the job's working folder (on SLURM, where it was submitted).
    `cluster="debug"` runs the jobs in this process (submitit's debug executor), which is how it is tested.
    """
    import submitit  # lazy: only users with a cluster need it

    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    executor.update_parameters(**parameters)
    modules = [str(Path(module).resolve()) if module.endswith(".py") else module for module in model_modules]
    items = []
    for request in requests:
        executor.update_parameters(name=f"usemabench-{request.model}-{request.seed}")
        job = executor.submit(run_in_job, replace(request, progress=False), modules)
        items.append(SweepItem(request, "submitted", str(job.job_id)))
        log(f"submit {_label(request)}: job {job.job_id}")
        if cluster == "debug":
            job.result()
    return items


def run_in_job(request: ExperimentRequest, model_modules: Sequence[str]) -> ExperimentOutcome:
    """What one SLURM job runs: the user's model modules, then the experiment."""
    for module in model_modules:
        import_model_module(module)
    return run_experiment(request)


def _label(request: ExperimentRequest) -> str:
    return f"{request.model} on {request.dataset}, protocol {request.protocol}, seed {request.seed}"
