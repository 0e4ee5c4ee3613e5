"""`usemabench push`, `pull` and `export`: publish a trained run's weights and fetch published ones."""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path

from usemabench.hub import CONFIG_NAME, HUB_FILES, model_config, pull, push_folder, save_pretrained
from usemabench.leaderboard.build import DEFAULT_RECORDS_DIR
from usemabench.core.records import read_records
from usemabench.model_card import build_model_card
from usemabench.runners.checkpoint import BEST
from usemabench.runners.errors import UsageError
from usemabench.runners.weights import load_weights

logger = logging.getLogger(__name__)
RECORDS_HELP = "where the run's train and eval records are, for the model card (default: %(default)s)"


def register(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser("export", help="write a run's best weights in the Hub layout, with a model card")
    export.add_argument("run_dir", type=Path, help="run folder holding best.pt")
    export.add_argument("output_dir", type=Path, help=f"folder for {', '.join(HUB_FILES)} (empty, or an earlier export)")
    export.add_argument("--records-dir", type=Path, default=DEFAULT_RECORDS_DIR, help=RECORDS_HELP)
    export.add_argument("--force", action="store_true", help="write into a non-empty folder (replaces those three files)")
    export.set_defaults(handler=run_export)

    push = subparsers.add_parser("push", help="publish a run's best weights and model card to a Hub repo")
    push.add_argument("run_dir", type=Path, help="run folder holding best.pt")
    push.add_argument("repo_id", help="org/name on the Hugging Face Hub")
    push.add_argument("--revision", default=None, help="branch to push to (created if missing)")
    push.add_argument("--private", action="store_true")
    push.add_argument("--records-dir", type=Path, default=DEFAULT_RECORDS_DIR, help=RECORDS_HELP)
    push.set_defaults(handler=run_push)

    pull_parser = subparsers.add_parser("pull", help="download and verify published weights (org/name[@revision])")
    pull_parser.add_argument("repo", help="org/name[@revision]")
    pull_parser.add_argument("--cache-dir", default=None)
    pull_parser.set_defaults(handler=run_pull)


def find_run_records(run_dir: Path, records_dir: Path) -> tuple[dict | None, dict | None]:
    """The train record whose checkpoint is `run_dir/best.pt`, and the eval record made from it."""
    records, _ = read_records(records_dir) if records_dir.is_dir() else ([], [])
    best = os.path.realpath(run_dir / BEST)
    train = next(
        (
            record
            for record in records
            if record["kind"] == "train"
            and os.path.realpath(Path(record["_path"]).parent / record["files"].get("checkpoint", "")) == best
        ),
        None,
    )
    if train is None:
        return None, None
    train_name = Path(train["_path"]).name
    evaluation = next(
        (record for record in records if record["kind"] == "eval" and record["files"].get("train_record") == train_name),
        None,
    )
    return train, evaluation


def export_run(run_dir: Path, output_dir: Path, records_dir: Path) -> Path:
    """Hub-layout folder (config.json, model.safetensors, README.md card from the run's records)."""
    loaded = load_weights(str(run_dir))
    model = loaded.model
    train, evaluation = find_run_records(run_dir, records_dir)
    if train is None:
        logger.warning("warning: no train record of %s in %s: the model card names no dataset and has no results "
                       "(give the run's --records-dir)", run_dir, records_dir)
    card = build_model_card(
        model.usemabench_info,
        model_config(model),
        train,
        evaluation,
        Path(evaluation["_path"]).parent if evaluation else None,
    )
    return save_pretrained(model, output_dir, card, preprocessing=loaded.preprocessing)


def check_export_folder(folder: Path, force: bool) -> None:
    """Refuse a non-empty folder unless it is an earlier export: a README.md or config.json there may be the user's."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file, not a folder")
    names = sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []
    if names and not force and not is_earlier_export(folder, names):
        listed = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise UsageError(f"{folder} is not empty ({listed}) and not an earlier export; choose an empty folder or "
                         f"pass --force (replaces {', '.join(HUB_FILES)} there, keeps the rest)")


def is_earlier_export(folder: Path, names: list[str]) -> bool:
    """True for a folder of Hub files only whose config.json is one `export` writes."""
    if not set(names) <= set(HUB_FILES) or CONFIG_NAME not in names:
        return False
    try:
        return "usemabench_name" in json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    except (ValueError, TypeError, OSError):
        return False


def run_export(args: argparse.Namespace) -> int:
    check_export_folder(args.output_dir, args.force)
    folder = export_run(args.run_dir, args.output_dir, args.records_dir)
    print(f"wrote {folder}")
    return 0


def run_push(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="usemabench-push-") as staging:
        folder = export_run(args.run_dir, Path(staging), args.records_dir)
        url = push_folder(folder, args.repo_id, revision=args.revision, private=args.private)
    print(f"pushed {args.run_dir} to {args.repo_id}: {url}")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    folder = pull(args.repo, cache_dir=args.cache_dir)
    print(folder)
    return 0
