"""`usemabench datasets ...`: list, verify, split, import and download datasets."""

from __future__ import annotations

import argparse

from usemabench.core.arguments import seed_value
from usemabench.datasets.converters import IMPORTERS, parse_label_map, run_import
from usemabench.datasets.download import DOWNLOADS, download_dataset
from usemabench.datasets.errors import DatasetError
from usemabench.datasets.spec import DatasetSpec, get_dataset_spec, list_datasets
from usemabench.datasets.groups import grouping_hint
from usemabench.datasets.source_options import options_help
from usemabench.datasets.splits import (
    SplitFile, case_groups, check_groups_whole, check_split_matches_data, generate_split_file, given_split_path, read_split_file,
    spec_sources, write_split_file,
)  # fmt: skip
from usemabench.datasets.sources import SourceURI, open_source
from usemabench.datasets.locations import expand_data_placeholder
from usemabench.datasets.verify import verify_cases
from usemabench.text_table import format_table

VERIFY_RESOLUTION = 96  # the quick protocol's resolution (runners/protocols/quick.json; a test keeps them equal)

SPLIT_DEFAULTS = {"seed": 0, "val": 0.1, "test": 0.1}  # `datasets split` drawing options left as they are


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "datasets",
        help="list, verify, split, import and download datasets",
        description="List, verify, split, import and download datasets. Any --dataset takes a registered name or a "
        "source URI: folder:PATH, nnunet:PATH, hf:REPO[:SPLIT], each with ?key=value&... options.",
        epilog=f"source URI options:\n{options_help()}\n\nRegistered datasets are read from $USEMABENCH_DATA/<folder> "
        "(default: ../shared/data).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=run_list)
    commands = parser.add_subparsers(dest="datasets_command", metavar="SUBCOMMAND")

    commands.add_parser("list", help="registered datasets and whether their data is found (the default)").set_defaults(handler=run_list)

    verify = commands.add_parser("verify", help="check every image/mask pair and the split of a dataset or source")
    verify.add_argument("source", help="registered name, source URI (folder:PATH, nnunet:PATH, hf:REPO[:SPLIT]) or folder path")
    verify.add_argument("--max-problems", type=int, default=None, help="print at most this many problems (default: every one)")
    verify.add_argument(
        "--resolution", type=int, default=VERIFY_RESOLUTION,
        help=f"side of the square training resolution the resize ceiling is measured at (default {VERIFY_RESOLUTION}: the quick protocol's)",
    )
    verify.set_defaults(handler=run_verify)

    split = commands.add_parser("split", help="write a new seeded split file (never overwrites without --force)")
    split.add_argument("source", help="registered name, source URI or folder path")
    split.add_argument("--out", default=None, help="split file to write (default: the dataset's split file)")
    split.add_argument("--seed", type=seed_value, default=SPLIT_DEFAULTS["seed"])
    split.add_argument("--val", type=_share, default=SPLIT_DEFAULTS["val"], help="validation share: a fraction (0.1) or a count (16)")
    split.add_argument(
        "--test", type=_share, default=SPLIT_DEFAULTS["test"],
        help="test share: a fraction or a count (ignored where the data has a test source)",
    )
    split.add_argument("--folds", type=int, default=None, help="k folds (fold<i>_train / fold<i>_val) plus test, instead of train/val")
    split.add_argument("--contiguous", action="store_true", help="keep the natural case order (slices of one volume) instead of shuffling")
    split.add_argument(
        "--from", dest="given", default=None, metavar="FILE",
        help="import a given split: CSV (case_id,split columns), JSON {part: [case ids]} or nnU-Net splits_final.json; "
        "a missing val is carved from its train (--val, --seed)",
    )  # fmt: skip
    split.add_argument(
        "--group-by", default=None, metavar="REGEX",
        help="keep groups whole: the first capture group (else the match) of each case id names its group, "
        "e.g. '^(seq\\d+)_' or '^(.*\\D)\\d+$' (default: the URI's group_by, else the data's groups.csv)",
    )  # fmt: skip
    split.add_argument("--force", action="store_true", help="replace an existing split file")
    split.set_defaults(handler=run_split)

    convert = commands.add_parser("import", help="convert a raw layout into the image/mask folder format")
    convert.add_argument("layout", choices=sorted(IMPORTERS))
    convert.add_argument("src", help="the raw dataset folder")
    convert.add_argument("dst", help="the new folder-format dataset (must not exist or be empty)")
    convert.add_argument("--map", default=None, help="relabel only: RAW:CLASS pairs, e.g. 0:0,255:1")
    convert.set_defaults(handler=run_import_command)

    download = commands.add_parser("download", help="download a registered dataset, check its checksum and import it")
    download.add_argument("name", choices=sorted(DOWNLOADS))
    download.add_argument("--dest", default=None, help="data root to fill (default: $USEMABENCH_DATA or <cache>/data)")
    download.add_argument("--url", default=None, help="a mirror (or file://) URL of the same archive")
    download.add_argument("--sha256", default=None, help="expected SHA-256 of the archive")
    download.add_argument("--no-verify", action="store_true", help="accept an archive with no known checksum (prints its SHA-256)")
    download.set_defaults(handler=run_download)


def _share(text: str) -> float | int:
    """A fraction in (0, 1) or a whole count >= 0; anything else (2.5, 1.0, -3) would silently mean another split."""
    try:
        share = float(text) if "." in text else int(text)
    except ValueError:
        share = -1
    if (0 < share < 1) if isinstance(share, float) else share >= 0:
        return share
    raise argparse.ArgumentTypeError(f"{text!r} is neither a fraction in (0, 1) nor a whole count of cases")


def _data_status(spec: DatasetSpec) -> str:
    parsed = SourceURI.parse(spec.source)
    if parsed.scheme == "synthetic":
        return "generated on first use"
    if parsed.scheme == "hf":
        return parsed.target
    try:
        return expand_data_placeholder(parsed.target)
    except DatasetError:
        folder = parsed.target.removeprefix("{data}/").split("/")[0]
        download = f", or usemabench datasets download {spec.name}" if spec.name in DOWNLOADS else ""
        return f"not found: set USEMABENCH_DATA to the folder holding {folder}/{download}"


def run_list(args: argparse.Namespace) -> int:
    rows = [("name", "task", "classes", "ch", "eval", "data")]
    for name in list_datasets():
        spec = get_dataset_spec(name)
        rows.append((name, spec.task, ",".join(spec.class_names[1:]), str(spec.in_channels), spec.eval_policy, _data_status(spec)))
    print(format_table(rows))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    spec = get_dataset_spec(args.source)
    print(f"dataset {spec.name}: {spec.task}, classes {', '.join(spec.class_names)}, {spec.in_channels} channel(s)")
    print(f"masks: {_masks_line(spec)}")
    problems: list[str] = []
    split_file = read_split_file(spec.split_path) if spec.split_path.exists() else None
    sources = spec_sources(spec, split_file.splits if split_file else ())
    if split_file is None:
        given = given_split_path(spec, {}, sources[spec.source])
        made = f"imported from {given}" if given else "a seeded random split"
        print(f"split file: none yet ({spec.split_path} is written on first use: {made})")
    else:
        counts = ", ".join(f"{name} {len(split_file.splits[name])}" for name in split_file.split_names)
        origin = f", imported from {split_file.method['from']}" if split_file.method.get("kind") == "given" else ""
        print(f"split file: {split_file.display_path} (hash {split_file.split_hash}{origin}): {counts}")
        try:
            check_split_matches_data(split_file, sources)
        except DatasetError as error:
            problems.append(str(error))
        problems += [f"split '{name}' is empty" for name, cases in split_file.splits.items() if not cases]
    problems += _grouping_lines(spec, sources, split_file)
    for uri, source in sources.items():
        report = verify_cases(spec, source, source.case_ids(), ceiling_resolution=args.resolution)
        if not report.checked:
            report.problems.append(f"{uri}: no cases")
        print(f"source {uri}")
        for line in report.summary_lines(spec):
            print(f"  {line}")
        problems += report.problems
    for problem in problems[: args.max_problems]:
        print(f"problem: {problem}")
    if args.max_problems is not None and len(problems) > args.max_problems:
        print(f"... and {len(problems) - args.max_problems} more problems")
    print("ok" if not problems else f"FAILED: {len(problems)} problem(s)")
    return 0 if not problems else 1


def _masks_line(spec: DatasetSpec) -> str:
    """How masks are read: the inference and its evidence for an ad-hoc dataset, the spec's fields otherwise."""
    if "; masks: " in spec.description:
        return f"{spec.mask_encoding} encoding ({spec.description.split('; masks: ', 1)[1]})"
    if spec.mask_encoding == "threshold":
        return f"threshold encoding (first channel > {spec.mask_threshold} is foreground)"
    if spec.label_map:
        return f"{spec.mask_encoding} encoding (raw value -> class: {', '.join(f'{raw} -> {c}' for raw, c in spec.label_map.items())})"
    return f"{spec.mask_encoding} encoding"


def _grouping_lines(spec: DatasetSpec, sources: dict, split_file: SplitFile | None) -> list[str]:
    """Problems of a split that cuts a group; a warning is printed where case ids look grouped but no grouping is set."""
    all_ids = sorted({case for source in sources.values() for case in source.case_ids()})
    try:
        groups, how = case_groups(spec, sources[spec.source], all_ids, split_file.method.get("group_by") if split_file else None)
        if groups is None:
            if hint := grouping_hint(all_ids):
                print(f"warning: {hint}")
            return []
        print(f"groups: {len(set(groups.values()))} by {how.get('group_by') or how.get('groups_file')}")
        if split_file is not None:
            check_groups_whole(split_file.splits, groups, split_file.display_path)
    except DatasetError as error:
        return [str(error)]
    return []


def run_split(args: argparse.Namespace) -> int:
    spec = get_dataset_spec(args.source)
    shipped = SourceURI.parse(spec.source).options.get("split_file") is None and open_source(spec.source).shipped_split_file()
    drawing = {"--folds": args.folds, "--contiguous": args.contiguous, "--group-by": args.group_by}
    given_options = [option for option, value in drawing.items() if value] + [
        option for option in ("--seed", "--val", "--test") if getattr(args, option[2:]) != SPLIT_DEFAULTS[option[2:]]
    ]
    if shipped and not args.given and given_options:
        raise DatasetError(
            f"{shipped} ships with the data and is imported as given, so {', '.join(given_options)} would be ignored; "
            "to draw a split of this folder instead, move that file out of it"
        )
    method = {"kind": "contiguous" if args.contiguous else "random", "seed": args.seed, "val": args.val, "test": args.test}
    if args.folds:
        method["folds"] = args.folds
    if args.given:
        method["from"] = args.given
    if args.group_by:
        method["group_by"] = args.group_by
    split_file = write_split_file(args.out or spec.split_path, generate_split_file(spec, method=method), overwrite=args.force)
    counts = ", ".join(f"{name} {len(split_file.splits[name])}" for name in split_file.split_names)
    print(f"wrote {split_file.path} (split hash {split_file.split_hash}, case-list hash {split_file.data_hash}): {counts}")
    return 0


def run_import_command(args: argparse.Namespace) -> int:
    label_map = parse_label_map(args.map) if args.map else None
    if label_map is not None and args.layout != "relabel":
        raise DatasetError("--map applies to the relabel layout only")
    report = run_import(args.layout, args.src, args.dst, label_map)
    print(f"imported {report.cases} cases ({args.layout}) into {args.dst}")
    for note in report.notes:
        print(f"  {note}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    for entry in DOWNLOADS[args.name]:
        if entry.note:
            print(f"{entry.folder}: {entry.note}")
    download_dataset(args.name, args.dest, url=args.url, sha256=args.sha256, verify=not args.no_verify)
    return 0
