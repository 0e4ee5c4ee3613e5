"""Optimizer and learning-rate schedule built from a protocol (no hyperparameter lives in code)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

from usemabench.runners.protocol import OptimizerConfig, ScheduleConfig


def build_optimizer(parameters: Iterable[torch.nn.Parameter], config: OptimizerConfig) -> torch.optim.Optimizer:
    if config.name == "sgd":
        return torch.optim.SGD(
            parameters, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=config.weight_decay
        )
    if config.name == "adamw":
        return torch.optim.AdamW(parameters, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.name!r}")


class LearningRateFactor:
    """lr multiplier at iteration t: linear warm-up over `warmup` iterations, then poly decay to 0 at `total`.

    A class rather than a lambda so the schedule is plain data (LambdaLR stores only its position).
    """

    def __init__(self, total: int, warmup: int = 0, power: float = 0.9, decay: bool = True) -> None:
        self.total, self.warmup, self.power, self.decay = total, warmup, power, decay

    def __call__(self, iteration: int) -> float:
        if iteration < self.warmup:
            return (iteration + 1) / self.warmup
        if not self.decay:
            return 1.0
        progress = (iteration - self.warmup) / max(1, self.total - self.warmup)
        return max(0.0, 1.0 - progress) ** self.power


def build_scheduler(optimizer: torch.optim.Optimizer, config: ScheduleConfig, total_iterations: int) -> LambdaLR:
    """Stepped once per iteration (nnU-Net steps poly per epoch; per iteration is the finer equivalent)."""
    factor = LearningRateFactor(total_iterations, config.warmup_iterations, config.power, decay=config.name == "poly")
    return LambdaLR(optimizer, factor)
