"""Qualitative panel: image, ground truth and each model's prediction for a few test cases.

Reads the PNGs the evaluator saves beside an eval record: `files["predictions"]/<stem>.png` (a label
map, pixel value = class index), and when present `files["images"]/<stem>.png` and
`files["labels"]/<stem>.png`, where <stem> is `usemabench.core.io.safe_file_stem` of the case id. Cases shown:
the worst, median and best saved case by Dice of the reference model (of the best-ranked model with saved
predictions when the reference has none; the first cases by name without scores). A key under the panel names
the class of each overlay colour (from the registered dataset; 'class k' for a dataset the registry does not know).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Colormap, ListedColormap
from matplotlib.patches import Patch
from PIL import Image

from usemabench.core.io import safe_file_stem
from usemabench.datasets import DatasetError, get_dataset_spec
from usemabench.leaderboard.aggregate import GroupBoard
from usemabench.reports.figures import ReportFigure, new_figure, report_style, slug, write_figure

CASES_SHOWN = 3
MODELS_SHOWN = 6
OVERLAY_ALPHA = 0.5
NAME_WRAP_CHARS = 26  # a missing folder's name, wrapped to the width of one panel
# Heights (inches): a row of cases, the titles above, and the colour key below (its title, then each row of it).
PANEL_IN, TITLE_IN, KEY_TITLE_IN, KEY_ROW_IN = 1.8, 0.45, 0.2, 0.2
KEY_COLUMNS = 6
# tab10 colours by class value (0, background, is never drawn): cyan, green, pink, blue, orange, purple, olive, red, brown.
TAB10_CLASS_ORDER = (7, 9, 2, 6, 0, 1, 4, 8, 3, 5)


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


def _labels(mask: np.ndarray) -> np.ndarray:
    return mask if mask.ndim == 2 else mask[..., 0]


def class_palette(classes: int) -> Colormap:
    """Colour of class k: palette(k), the same in every panel of a figure; up to 9 foreground classes, tab10 with
    cyan, green and pink first (they stand out on grey EM and nuclei images and on reddish endoscopy alike), beyond
    that tab20."""
    if classes > 9:
        return colormaps["tab20"]
    tab10 = colormaps["tab10"]
    return ListedColormap([tab10(index) for index in TAB10_CLASS_ORDER], name="usemabench-classes")


def class_names(dataset: str, classes: list[int]) -> list[str]:
    """'k name' for each class value, the names from the registered dataset, else 'class k'."""
    try:
        names = get_dataset_spec(dataset).class_names
    except DatasetError:
        names = ()
    return [f"{value} {names[value]}" if value < len(names) else f"class {value}" for value in classes]


def _draw(axis, image: np.ndarray | None, mask: np.ndarray | None, palette: Colormap, expects_mask: bool,
          absent: str = "not saved") -> None:
    """The image with `mask` overlaid (class colours, background transparent); `absent` when it is missing."""
    if image is not None:
        axis.imshow(image, cmap="gray" if image.ndim == 2 else None)
    elif mask is not None:
        axis.imshow(np.zeros(mask.shape[:2]), cmap="gray", vmin=0, vmax=1)
    if mask is not None:
        labels = _labels(mask).astype(int)
        overlay = palette(labels % palette.N)
        overlay[..., 3] = np.where(labels == 0, 0.0, OVERLAY_ALPHA)
        axis.imshow(overlay)
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
    rows = [(stem, _read(image_folder, stem), [_read(label_folder, stem), *[_read(item.predictions, stem) for item in sources]])
            for stem in cases]
    shown = sorted({int(value) for _, _, masks in rows for mask in masks if mask is not None
                    for value in np.unique(_labels(mask)) if value > 0})
    palette = class_palette(max(shown, default=0))
    key = KEY_TITLE_IN + KEY_ROW_IN * -(-len(shown) // KEY_COLUMNS) if shown else 0.05
    height = PANEL_IN * len(cases) + TITLE_IN + key
    with report_style():
        figure = new_figure(1.7 * len(columns), height, left=0.04, right=0.99, bottom=key / height,
                            top=1 - TITLE_IN / height, wspace=0.05, hspace=0.05)
        axes = figure.subplots(len(cases), len(columns), squeeze=False)
        for row, (stem, image, (label, *predictions)) in enumerate(rows):
            _draw(axes[row, 0], image, None, palette, expects_mask=False, absent=absent_text(image_folder))
            _draw(axes[row, 1], image, label, palette, expects_mask=True, absent=absent_text(label_folder))
            for column, mask in enumerate(predictions, start=2):
                _draw(axes[row, column], image, mask, palette, expects_mask=True)
            # Case ids can be 64-character hashes (DSB2018): a 16-character prefix keeps rows apart.
            axes[row, 0].set_ylabel(stem if len(stem) <= 16 else f"{stem[:16]}…", fontsize=7)
        for column, title in enumerate(columns):
            axes[0, column].set_title(title, fontsize=7)
        if shown:
            patches = [Patch(facecolor=palette(value % palette.N), alpha=OVERLAY_ALPHA, label=name)
                       for value, name in zip(shown, class_names(board.dataset, shown))]
            figure.legend(handles=patches, loc="lower center", ncol=min(len(patches), KEY_COLUMNS), frameon=False,
                          title="overlay colour: class", title_fontsize=7, fontsize=7, bbox_to_anchor=(0.5, 0.0))
        figure.suptitle(f"Test cases: {board.dataset} · {board.protocol} ({chosen_how})")
        return write_figure(figure, path, f"Qualitative: {board.dataset} · {board.protocol}", ("group", board.dataset, board.protocol))


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
