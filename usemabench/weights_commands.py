"""`usemabench weights` (list, add) and `usemabench publish`: the pretrained manifest from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from usemabench.leaderboard.build import DEFAULT_RECORDS_DIR
from usemabench.pretrained_export import DEFAULT_STAGING_DIR, add_run, entry_size, publish
from usemabench.text_table import format_table
from usemabench.zoo.pretrained import MANIFEST_PATH, PretrainedCfg, load_manifest, list_pretrained

MANIFEST_HELP = "pretrained manifest (default: the package's own)"
STAGING_HELP = "where Hub entries' weights folders are written and published from (default: %(default)s)"


def register(subparsers: argparse._SubParsersAction) -> None:
    weights = subparsers.add_parser("weights", help="list pretrained weights (arch.tag names), or add a finished run's")
    weights.set_defaults(handler=run_list, pattern=None, manifest=None)
    actions = weights.add_subparsers(dest="weights_command", metavar="ACTION")
    listing = actions.add_parser("list", help="list the manifest's weights (the default action)")
    listing.add_argument("pattern", nargs="?", default=None, help="shell-style filter, e.g. 'usema_tiny.*'")
    listing.add_argument("--manifest", type=Path, default=None, help=MANIFEST_HELP)
    listing.set_defaults(handler=run_list)

    add = actions.add_parser("add", help="export a finished run (best.pt + its train/eval records) as arch.TAG")
    add.add_argument("run_dir", type=Path, help="run folder holding best.pt")
    add.add_argument("--tag", required=True, help="the weights' tag, e.g. kvasir_seg_cpu (no dots)")
    add.add_argument("--records-dir", type=Path, default=DEFAULT_RECORDS_DIR,
                     help="where the run's train and eval records are (default: %(default)s)")
    add.add_argument("--fp16", action="store_true", help="store floating tensors in fp16 (half the size)")
    add.add_argument("--hub-id", default=None, help="publish on the Hub as org/name instead of shipping in the package")
    add.add_argument("--staging-dir", type=Path, default=DEFAULT_STAGING_DIR, help=STAGING_HELP)
    add.add_argument("--default", action="store_true", help="make this the tag that pretrained=True loads for the model")
    add.add_argument("--manifest", type=Path, default=None, help=MANIFEST_HELP)
    add.add_argument("--force", action="store_true", help="replace an entry of the same name")
    add.set_defaults(handler=run_add)

    publish_parser = subparsers.add_parser("publish", help="push every Hub entry of the manifest not yet published")
    publish_parser.add_argument("--staging-dir", type=Path, default=DEFAULT_STAGING_DIR, help=STAGING_HELP)
    publish_parser.add_argument("--manifest", type=Path, default=None, help=MANIFEST_HELP)
    publish_parser.set_defaults(handler=run_publish)


def where(cfg: PretrainedCfg, manifest: Path) -> str:
    if cfg.file is not None:
        size = entry_size(cfg, manifest)
        return f"packaged ({size / 1e6:.1f} MB)" if size is not None else "packaged (file missing)"
    return f"{cfg.hub_id}@{cfg.revision[:10]}" if cfg.revision else f"{cfg.hub_id} (not published)"


def run_list(args: argparse.Namespace) -> int:
    manifest = args.manifest or MANIFEST_PATH
    entries = load_manifest(manifest)
    rows = [("name", "default", "in", "classes", "resolution", "dataset", "test dice", "dtype", "where", "license")]
    for name in list_pretrained(args.pattern, manifest):
        cfg = entries[name]
        resolution = "x".join(str(side) for side in cfg.resolution) if cfg.resolution else "-"
        dice = f"{cfg.test_dice:.4f}" if cfg.test_dice is not None else "-"
        rows.append((name, "yes" if cfg.default else "", str(cfg.in_channels), ", ".join(cfg.class_names) or str(cfg.num_classes),
                     resolution, cfg.dataset or "-", dice, cfg.dtype, where(cfg, manifest), cfg.license))
    if len(rows) == 1:
        print(f"no pretrained weights{' match ' + args.pattern if args.pattern else ''} in {manifest}")
        return 0
    print(format_table(rows))
    return 0


def run_add(args: argparse.Namespace) -> int:
    cfg = add_run(args.run_dir, args.tag, args.records_dir, args.manifest or MANIFEST_PATH, fp16=args.fp16,
                  hub_id=args.hub_id, staging_dir=args.staging_dir, default=args.default, force=args.force)
    where_to = f"{args.staging_dir / cfg.name} (run `usemabench publish`)" if cfg.hub_id else (args.manifest or MANIFEST_PATH).parent
    print(f"added {cfg.name} (test dice {cfg.test_dice:.4f}, {cfg.dtype}, sha256 {cfg.sha256[:12]}) to {where_to}")
    return 0


def run_publish(args: argparse.Namespace) -> int:
    pushed = publish(args.manifest or MANIFEST_PATH, args.staging_dir)
    for cfg in pushed:
        print(f"published {cfg.name} to {cfg.hub_id}@{cfg.revision}")
    if not pushed:
        print("every Hub entry is already published")
    return 0
