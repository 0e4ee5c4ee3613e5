"""The training loss: Dice + cross-entropy (MONAI's DiceCELoss), with nnU-Net's deep-supervision weights.

nnU-Net v2 (and U-Mamba, which trains with it) uses a batch soft Dice over the foreground classes plus
cross-entropy, weighted 1:1. Under deep supervision output i (full resolution first) gets weight 2^-i,
the coarsest output gets 0, and the weights are normalised to sum to 1; targets are downsampled by
nearest-neighbour to each output's size.

Pixels labelled IGNORE_INDEX (outside a field of view, inside an ignore mask, letterbox padding) add
nothing to either term: MONAI's DiceLoss masks them (`ignore_index`), cross-entropy averages over the rest.
Without ignored pixels the value is bit for bit that of MONAI's DiceCELoss with the same settings.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from torch import nn

from usemabench.datasets.regions import IGNORE_INDEX


def deep_supervision_weights(num_outputs: int) -> list[float]:
    """nnU-Net's weights: 1, 1/2, 1/4, ... with the coarsest output at 0, normalised to sum to 1."""
    weights = [0.5**index for index in range(num_outputs)]
    if num_outputs > 1:
        weights[-1] = 0.0
    total = sum(weights)
    return [weight / total for weight in weights]


class SegmentationLoss(nn.Module):
    """Dice + CE on logits `(B, K, H, W)` (or a list of them under deep supervision) and labels `(B, H, W)`.

    With `deep_supervision=False` only the first (full-resolution) output of a list is used, so the same
    protocol can switch deep supervision off for every model alike.
    """

    def __init__(self, dice_weight: float = 1.0, ce_weight: float = 1.0, deep_supervision: bool = True) -> None:
        super().__init__()
        self.deep_supervision = deep_supervision
        self.dice_weight, self.ce_weight = dice_weight, ce_weight
        # nnU-Net's soft Dice: foreground classes only, sums over the whole batch, smoothing 1e-5.
        self.dice = DiceLoss(
            include_background=False,
            to_onehot_y=True,
            softmax=True,
            batch=True,
            smooth_nr=1e-5,
            smooth_dr=1e-5,
            ignore_index=IGNORE_INDEX,
        )
        self.cross_entropy = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)

    def dice_ce(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Dice + CE of logits (B, K, H, W) against float labels (B, 1, H, W), ignored pixels left out."""
        targets = labels[:, 0].long()
        if bool((targets == IGNORE_INDEX).all()):  # nothing to score (a crop wholly outside the field of view)
            return logits.sum() * 0.0
        return self.dice_weight * self.dice(logits, labels) + self.ce_weight * self.cross_entropy(logits, targets)

    def forward(self, outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            outputs = [outputs]
        if not self.deep_supervision:
            outputs = outputs[:1]
        weights = deep_supervision_weights(len(outputs))
        labels = target.unsqueeze(1).float()
        total = outputs[0].new_zeros((), dtype=torch.float32)
        # The coarsest output (weight 0) is still computed: its head then gets a zero gradient, which
        # DistributedDataParallel needs (nnU-Net uses a 1e-6 weight for the same reason).
        for logits, weight in zip(outputs, weights):
            scaled = labels if logits.shape[-2:] == labels.shape[-2:] else F.interpolate(labels, size=logits.shape[-2:], mode="nearest")
            # Losses in fp32 even under autocast: softmax sums and log over bf16 logits lose precision.
            total = total + weight * self.dice_ce(logits.float(), scaled)
        return total
