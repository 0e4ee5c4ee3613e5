"""Throwaway data and a tiny model for runner tests: fast on the CPU, random where resume must cope with it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset


class BlobDataset(Dataset):
    """Seeded images with one bright disc (class 1) each; `augment` flips with torch's global RNG.

    The flip uses the global RNG on purpose: it is what a torchvision transform does, so resume tests
    check that per-sample seeding makes augmentation reproducible.
    """

    def __init__(self, count: int = 12, size: int = 32, seed: int = 0, augment: bool = False, sizes: list[int] | None = None) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.cases = []
        for index in range(count):
            side = sizes[index % len(sizes)] if sizes else size
            ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
            cy, cx = torch.randint(side // 4, 3 * side // 4, (2,), generator=generator).tolist()
            radius = side / 6
            mask = (((ys - cy) ** 2 + (xs - cx) ** 2) <= radius**2).long()
            image = mask.float() + 0.3 * torch.randn(side, side, generator=generator)
            self.cases.append({"image": image.unsqueeze(0), "mask": mask, "case_id": f"case{index:02d}"})
        self.augment = augment

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> dict:
        case = dict(self.cases[index])
        if self.augment and torch.rand(()) < 0.5:
            case["image"], case["mask"] = case["image"].flip(-1), case["mask"].flip(-1)
        return case


class TinyNet(nn.Module):
    """Two conv layers, dropout (so the training RNG stream matters) and a half-resolution aux head."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 8, nan_after_calls: int | None = None) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.Dropout2d(0.1))
        self.head = nn.Conv2d(width, num_classes, 1)
        self.aux = nn.Conv2d(width, num_classes, 1)
        self.nan_after_calls = nan_after_calls
        self.calls = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        features = self.body(images)
        logits = self.head(features)
        self.calls += 1
        if self.nan_after_calls is not None and self.calls > self.nan_after_calls:
            logits = logits * float("nan")
        if self.training:
            return [logits, self.aux(F.avg_pool2d(features, 2))]
        return logits
