"""Datasets: specs and their registry, sources (folder, nnU-Net raw, Hugging Face), fixed splits,
transforms, the evaluation policy and the embedded synthetic default.

    from usemabench.datasets import SegmentationDataset, get_dataset_spec, training_transform
    spec = get_dataset_spec("synthetic")              # or "kvasir_seg", or "folder:/path/to/data"
    train = SegmentationDataset(spec, "train", training_transform(spec, 96))
"""

from usemabench.datasets import catalog as _catalog  # noqa: F401  (registers the built-in datasets)
from usemabench.datasets.errors import DatasetError
from usemabench.datasets.evaluation import predict_native, prepare_eval_input, restore_prediction, sliding_window_logits
from usemabench.datasets.loader import SegmentationDataset
from usemabench.datasets.spec import DatasetSpec, get_dataset_spec, list_datasets, register_dataset
from usemabench.datasets.splits import SplitFile, ensure_split_file, read_split_file, split_info
from usemabench.datasets.transforms import AUGMENTATION_PRESETS, eval_transform, normalize_image, training_transform

__all__ = [
    "AUGMENTATION_PRESETS",
    "DatasetError",
    "DatasetSpec",
    "SegmentationDataset",
    "SplitFile",
    "ensure_split_file",
    "eval_transform",
    "get_dataset_spec",
    "list_datasets",
    "normalize_image",
    "predict_native",
    "prepare_eval_input",
    "read_split_file",
    "register_dataset",
    "restore_prediction",
    "sliding_window_logits",
    "split_info",
    "training_transform",
]
