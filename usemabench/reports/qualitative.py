"""Qualitative panel: image, ground truth and each model's prediction for a few test cases.

Reads the PNGs the evaluator saves beside an eval record: `files["predictions"]/<stem>.png` (a label
map, pixel value = class index), and when present `files["images"]/<stem>.png` and
`files["labels"]/<stem>.png`, where <stem> is `usemabench.core.io.safe_file_stem` of the case id. Cases shown:
the worst, median and best saved case by Dice of the reference model (of the best-ranked model with saved
predictions when the reference has none; the first cases by name without scores).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image

from usemabench.core.io import safe_file_stem
from usemabench.leaderboard.aggregate import GroupBoard
from usemabench.reports.figures import ReportFigure, new_figure, report_style, save_png, slug

CASES_SHOWN = 3
MODELS_SHOWN = 6
OVERLAY_ALPHA = 0.5
NAME_WRAP_CHARS = 26  # a missing folder's name, wrapped to the width of one panel


@dataclass(frozen=True)
class Sources:
    """Where one model's saved masks are, and the image and ground-truth folders its record names (None when it
    names none; kept when absent, so the panel can say which folder is missing rather than 'not saved')."""

    model: str
    predictions: Path
    images: Path | None
    labels: Path | None


def _named_folder(records_root: Path, record_path: str, relative: object) -> Path | None:
    """The folder a record names, next to the record, whether or not it exists; None when it names none."""
    if not isinstance(relative, str) or not relative:
        return None
    return records_root / Path(record_path).parent / relative


def _folder(records_root: Path, record_path: str, relative: object) -> Path | None:
    folder = _named_folder(records_root, record_path, relative)
    return folder if folder is not None and folder.is_dir() else None


def pick_folder(folders: list[Path | None]) -> Path | None:
    """The first folder that exists, else the first one named (so its absence is reported), else None."""
    named = [folder for folder in folders if folder is not None]
    return next((folder for folder in named if folder.is_dir()), named[0] if named else None)


def absent_text(folder: Path | None) -> str:
    """What a panel without its picture says: which named folder is missing, or that nothing was saved."""
    if folder is not None and not folder.is_dir():
        return "missing:\n" + "\n".join(textwrap.wrap(folder.name, NAME_WRAP_CHARS))
    return "not saved"


def find_sources(board: GroupBoard, records_root: Path) -> list[Sources]:
    """Per model with saved predictions, the lowest seed's folders; reference first, then by rank."""
    if board.chosen_evals.empty:
        return []
    evals = board.chosen_evals.sort_values(["seed", "record_path"], kind="stable", na_position="last")
    sources = {}
    for _, row in evals.iterrows():
        predictions = _folder(records_root, row["record_path"], row["predictions_dir"])
        if row["model"] in sources or predictions is None:
            continue
        sources[row["model"]] = Sources(
            row["model"],
            predictions,
            _named_folder(records_root, row["record_path"], row["images_dir"]),
            _named_folder(records_root, row["record_path"], row["labels_dir"]),
        )
    order = list(board.table["model"])
    if board.reference in order:
        order.remove(board.reference)
        order.insert(0, board.reference)
    return [sources[model] for model in order if model in sources]


def choose_cases(board: GroupBoard, available: list[str], reference: str | None) -> tuple[list[str], str]:
    """File stems of `reference`'s worst, median and best case by Dice among `available`, else the first
    stems by name; and a phrase saying which."""
    scores = board.case_scores[board.case_scores["model"].eq(reference)].assign(
        stem=lambda frame: frame["case_id"].map(safe_file_stem)
    )
    scores = scores[scores["stem"].isin(available)].sort_values(["dice", "stem"], kind="stable")
    if len(scores) < CASES_SHOWN:
        return sorted(available)[:CASES_SHOWN], "first saved cases by name"
    positions = np.linspace(0, len(scores) - 1, CASES_SHOWN).round().astype(int)
    return list(scores["stem"].iloc[positions]), f"worst, median and best of the {len(scores)} saved cases of {reference} by Dice"


def _read(folder: Path | None, stem: str) -> np.ndarray | None:
    if folder is None or not (folder / f"{stem}.png").is_file():
        return None
    with Image.open(folder / f"{stem}.png") as image:
        return np.asarray(image)


def _draw(axis, image: np.ndarray | None, mask: np.ndarray | None, classes: int, expects_mask: bool,
          absent: str = "not saved") -> None:
    """The image with `mask` overlaid (class colours, background transparent); `absent` when it is missing."""
    if image is not None:
        axis.imshow(image, cmap="gray" if image.ndim == 2 else None)
    elif mask is not None:
        axis.imshow(np.zeros(mask.shape[:2]), cmap="gray", vmin=0, vmax=1)
    if mask is not None:
        labels = mask if mask.ndim == 2 else mask[..., 0]
        shown = np.ma.masked_where(labels == 0, labels)
        axis.imshow(shown, cmap=colormaps["tab10"], vmin=0, vmax=max(classes, 9), alpha=OVERLAY_ALPHA)
    if (mask if expects_mask else image) is None:
        axis.text(0.5, 0.5, absent, ha="center", va="center", transform=axis.transAxes, fontsize=7)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.grid(False)


def qualitative_figure(board: GroupBoard, records_root: Path, path: Path) -> ReportFigure | None:
    """The panel for one (dataset, protocol); None (and the report says why) without saved predictions."""
    sources = find_sources(board, records_root)[:MODELS_SHOWN]
    if not sources:
        return None
    anchor = sources[0]
    available = sorted(item.stem for item in anchor.predictions.glob("*.png"))
    cases, chosen_how = choose_cases(board, available, anchor.model)
    if not cases:
        return None
    image_folder = pick_folder([item.images for item in sources])
    label_folder = pick_folder([item.labels for item in sources])
    columns = ["image", "ground truth", *[item.model for item in sources]]
    with report_style():
        figure = new_figure(1.7 * len(columns), 1.8 * len(cases) + 0.4, left=0.04, right=0.99, bottom=0.01,
                            top=1 - 0.45 / (1.8 * len(cases) + 0.4), wspace=0.05, hspace=0.05)
        axes = figure.subplots(len(cases), len(columns), squeeze=False)
        for row, stem in enumerate(cases):
            image = _read(image_folder, stem)
            label = _read(label_folder, stem)
            predictions = [_read(item.predictions, stem) for item in sources]
            classes = int(max([0, *[np.max(mask) for mask in [label, *predictions] if mask is not None]]))
            _draw(axes[row, 0], image, None, classes, expects_mask=False, absent=absent_text(image_folder))
            _draw(axes[row, 1], image, label, classes, expects_mask=True, absent=absent_text(label_folder))
            for column, mask in enumerate(predictions, start=2):
                _draw(axes[row, column], image, mask, classes, expects_mask=True)
            # Case ids can be 64-character hashes (DSB2018): a 16-character prefix keeps rows apart.
            axes[row, 0].set_ylabel(stem if len(stem) <= 16 else f"{stem[:16]}…", fontsize=7)
        for column, title in enumerate(columns):
            axes[0, column].set_title(title, fontsize=7)
        figure.suptitle(f"Test cases: {board.dataset} · {board.protocol} ({chosen_how})")
        save_png(figure, path)
    return ReportFigure(path, f"Qualitative: {board.dataset} · {board.protocol}", ("group", board.dataset, board.protocol))


def qualitative_figures(boards: list[GroupBoard], records_root: Path, figures_dir: Path) -> tuple[list[ReportFigure], list[str]]:
    """Panels for every board with saved predictions, and a note for each board without."""
    written, notes = [], []
    for board in boards:
        path = figures_dir / f"{slug('cases', board.dataset, board.protocol)}.png"
        figure = qualitative_figure(board, records_root, path)
        if figure is None:
            notes.append(f"{board.dataset} · {board.protocol}: no qualitative panel (no saved predictions)")
        else:
            written.append(figure)
    return written, notes
