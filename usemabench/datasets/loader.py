"""SegmentationDataset: one split of a dataset as a torch Dataset of checked, normalised pairs."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from usemabench.datasets.cases import load_case
from usemabench.datasets.errors import DatasetError
from usemabench.datasets.regions import describe_ignored, region_file
from usemabench.datasets.spec import DatasetSpec, get_dataset_spec, list_datasets
from usemabench.datasets.splits import check_split_matches_data, ensure_split_file, spec_sources, split_entry
from usemabench.datasets.transforms import normalize_image
from usemabench.datasets.verify import verify_cases

Transform = Callable[[tv_tensors.Image, tv_tensors.Mask], tuple[Any, Any]]


class SegmentationDataset(Dataset):
    """Items `{"image": float32 (C, H, W), "mask": int64 (H, W), "case_id": str}` of one split.

    Mask pixels left out of the loss and the metrics hold IGNORE_INDEX (-1; see `regions.py`).

    Construction checks, before any training starts, that the split file still matches the data and
    that every pair of the split is readable, same-sized and holds only allowed labels; a problem
    stops with a DatasetError naming the file. Images are normalised per the spec on their native
    size, then `transform` (e.g. `training_transform(spec, 256)`) is applied to image and mask
    together; without a transform items keep their native size (evaluation).

        dataset = SegmentationDataset("synthetic", "train", training_transform(get_dataset_spec("synthetic"), 96))
        item = dataset[0]  # item["image"].shape == (1, 96, 96)
    """

    def __init__(self, spec: DatasetSpec | str, split: str, transform: Transform | None = None, *, verify: bool = True) -> None:
        self.spec = get_dataset_spec(spec)
        self.split = split
        self.transform = transform
        self.split_file = ensure_split_file(self.spec)
        self.case_ids = self.split_file.cases(split)
        sources = spec_sources(self.spec, self.split_file.splits)
        check_split_matches_data(self.split_file, sources)
        self.source = sources[self.spec.source_for(split)]
        absent = sorted(set(self.case_ids) - set(self.source.case_ids()))
        if absent:
            raise DatasetError(
                f"{self.split_file.path}: split '{split}' lists {len(absent)} case(s) not in {self.source.uri} (e.g. {absent[0]})"
            )
        if verify:
            report = verify_cases(self.spec, self.source, self.case_ids)
            registered = self.spec.name in list_datasets() and get_dataset_spec(self.spec.name).source == self.spec.source
            target = self.spec.name if registered else shlex.quote(self.spec.source)  # an ad-hoc name is no verify argument
            report.raise_if_problems(f"split '{split}' of dataset '{self.spec.name}'", f" (usemabench datasets verify {target} checks every split)")

    def __len__(self) -> int:
        return len(self.case_ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        case_id = self.case_ids[index]
        image_array, mask_array = load_case(self.spec, self.source, case_id)
        image = normalize_image(torch.from_numpy(image_array), self.spec.normalization)
        mask = torch.from_numpy(mask_array)
        if self.transform is not None:
            image, mask = self.transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        return {
            "image": image.as_subclass(torch.Tensor).to(torch.float32).contiguous(),
            "mask": mask.as_subclass(torch.Tensor).to(torch.int64).contiguous(),
            "case_id": case_id,
        }

    @property
    def ignored_pixels(self) -> str:
        """What this split leaves out of the loss and the metrics, in words ('none' when nothing), for records."""
        masks = getattr(self.source, "masks", {})  # folder sources: case id -> mask file
        case_id = next((case_id for case_id in self.case_ids if case_id in masks), None)
        region = region_file(masks[case_id], case_id) if case_id is not None else None
        return describe_ignored(region[0] if region else None, self.spec.ignore_index)

    def record_entry(self) -> dict[str, Any]:
        """The `dataset` field of a record: name, source, split, split file and hash."""
        return split_entry(self.spec, self.split)
