"""The training loop: one recipe (a Protocol) for every model, resumable to the bit.

Composition, not a trainer class: data order (`data.py`), loss (`losses.py`), optimizer and schedule
(`optim.py`), precision (`precision.py`), checkpoints (`checkpoint.py`), validation (`inference.py`).

Resume: `last.pt` is written atomically at the end of every epoch (and every
`checkpoint_every_iterations`) with the model, optimizer, scheduler, grad scaler, RNG states and loop
position. Restarted with the same arguments, `train` loads it and continues; since the data order and
augmentation are functions of (seed, epoch, position), the result equals an uninterrupted run (bitwise
on the CPU). A non-finite loss stops the run with NonFiniteLossError naming the step; checkpoints are
only ever written from finite states, so the last good one stays on disk.
"""

from __future__ import annotations

import csv
import io
import math
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from usemabench.core.io import atomic_write_text
from usemabench.runners.checkpoint import BEST, LAST, CheckpointError, load_checkpoint, save_checkpoint
from usemabench.runners.data import training_loader
from usemabench.runners.distributed import DistributedContext, barrier, mean_across_processes
from usemabench.runners.execution import apply_exec, parse_exec
from usemabench.runners.inference import validation_dice
from usemabench.runners.losses import SegmentationLoss
from usemabench.runners.optim import build_optimizer, build_scheduler
from usemabench.runners.precision import autocast
from usemabench.runners.protocol import Protocol
from usemabench.runners.seeding import capture_rng_state, derive_seed, restore_rng_state, seed_everything

LOG_NAME = "log.csv"
LOG_COLUMNS = ("epoch", "step", "train_loss", "val_dice", "lr", "epoch_seconds", "iterations_per_second")
CHECKPOINT_FORMAT = 1


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


class TrainingInterrupted(RuntimeError):
    """Raised by the `stop_after_steps` hook: stands for a process killed at that step (tests of resume)."""


@dataclass
class LoopState:
    """Where the loop is: `batch` batches of `epoch` are done; the running loss of that epoch."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    epoch_loss_sum: float = 0.0
    best_val_dice: float = -math.inf
    best_epoch: int = -1
    train_seconds: float = 0.0
    memory: dict[str, Any] = field(default_factory=dict)  # peak over every process that trained this run
    log: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    steps: int
    epochs: int
    best_val_dice: float
    best_epoch: int
    final_val_dice: float
    train_seconds: float
    memory: dict[str, Any]  # the record's memory fields: what was measured and how
    resumed_from_step: int | None
    resumed_train_seconds: float = 0.0  # training time of the processes this one resumed

    @property
    def log_path(self) -> Path:
        return self.run_dir / LOG_NAME

    def checkpoint_path(self, which: str) -> Path:
        return self.run_dir / (BEST if which == "best" else LAST)


def train(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset,
    protocol: Protocol,
    *,
    seed: int,
    run_dir: str | Path,
    num_classes: int,
    device: torch.device,
    precision: str = "fp32",
    eval_policy: str = "resize",
    identity: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    context: DistributedContext = DistributedContext(),
    stop_after_steps: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train `model` (already built and seeded) under `protocol`, resuming from `run_dir/last.pt` if present.

    `identity` (model config, dataset split and protocol hashes, seed) is stored in checkpoints; resuming
    from a checkpoint of a different run is refused. `metadata` (e.g. the preprocessing that `predict`
    must repeat) is stored in every checkpoint as is. Only rank 0 writes files.
    """
    run_dir = Path(run_dir)
    identity = {**(identity or {}), "seed": seed, "protocol_hash": protocol.hash}
    metadata = metadata or {}
    model.to(device)
    optimizer = build_optimizer(model.parameters(), protocol.optimizer)
    scheduler = build_scheduler(optimizer, protocol.schedule, protocol.total_iterations)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    loss_function = SegmentationLoss(protocol.loss.dice_weight, protocol.loss.ce_weight, protocol.loss.deep_supervision)

    state = LoopState()
    resumed_from = None
    if (run_dir / LAST).is_file():
        state = _resume(run_dir / LAST, identity, model, optimizer, scheduler, scaler)
        resumed_from = state.step
    else:
        seed_everything(derive_seed(seed, "train"))
    resumed_seconds = state.train_seconds
    if device.type == "cuda":
        # Fixed training shapes: let cuDNN pick its fastest kernels (GPU runs are not bitwise anyway).
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(device)

    # The protocol's execution mode (eager unless it says otherwise) runs the training steps; validation and
    # checkpoints use `model` itself (channels_last converted its weights in place; the state_dict is the same).
    trained = apply_exec(
        model, parse_exec(protocol.execution), wrap=lambda prepared: _wrap_distributed(prepared, context, device, protocol)
    )
    last_val_dice = state.log[-1]["val_dice"] if state.log else float("nan")
    while state.epoch < protocol.epochs:
        epoch_started = segment_started = time.perf_counter()
        batches_before = state.batch
        loader = training_loader(
            train_set,
            batch_size=protocol.batch_size,
            batches=protocol.iterations_per_epoch,
            seed=seed,
            epoch=state.epoch,
            start_batch=state.batch,
            num_workers=protocol.num_workers,
            rank=context.rank,
            world_size=context.world_size,
            pin_memory=device.type == "cuda",
        )
        bar = tqdm(
            loader,
            total=len(loader),
            desc=f"epoch {state.epoch + 1}/{protocol.epochs}",
            disable=not (progress and context.is_main),
            leave=False,
            dynamic_ncols=True,
        )
        for batch in bar:
            loss = _forward_loss(trained, batch, loss_function, optimizer, device, precision)
            loss_value = float(mean_across_processes(loss.detach(), context))
            if not math.isfinite(loss_value):
                kept = run_dir / LAST if (run_dir / LAST).is_file() else None
                raise NonFiniteLossError(
                    f"loss is {loss_value} at step {state.step + 1} (epoch {state.epoch + 1}, batch {state.batch + 1}); "
                    f"training stopped; last good checkpoint: {kept or 'none yet'}"
                )
            _backward_and_update(trained, loss, optimizer, scaler, scheduler, protocol)
            state.step += 1
            state.batch += 1
            state.epoch_loss_sum += loss_value
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            if stop_after_steps is not None and state.step >= stop_after_steps:
                raise TrainingInterrupted(f"stopped after step {state.step} (stop_after_steps)")
            every = protocol.checkpoint_every_iterations
            if every and state.step % every == 0 and state.batch < protocol.iterations_per_epoch:
                state.train_seconds += time.perf_counter() - segment_started
                segment_started = time.perf_counter()
                state.memory = _peak_memory(device, state.memory)
                _save_last(run_dir, model, optimizer, scheduler, scaler, state, identity, metadata, context)
        bar.close()

        state.train_seconds += time.perf_counter() - segment_started
        seconds = time.perf_counter() - epoch_started
        if context.is_main:
            last_val_dice = validation_dice(model, val_set, protocol.resolution, eval_policy, num_classes, device, precision)
        state.log.append({
            "epoch": state.epoch + 1,
            "step": state.step,
            "train_loss": state.epoch_loss_sum / protocol.iterations_per_epoch,
            "val_dice": last_val_dice,
            "lr": scheduler.get_last_lr()[0],
            "epoch_seconds": round(seconds, 3),
            "iterations_per_second": round((state.batch - batches_before) / max(seconds, 1e-9), 3),
        })
        improved = context.is_main and last_val_dice > state.best_val_dice
        if improved:
            state.best_val_dice, state.best_epoch = last_val_dice, state.epoch + 1
        state.epoch, state.batch, state.epoch_loss_sum = state.epoch + 1, 0, 0.0
        state.memory = _peak_memory(device, state.memory)
        if context.is_main:
            if improved:
                save_checkpoint(run_dir / BEST, {**metadata, **weights_payload(model, identity, state)})
            _save_last(run_dir, model, optimizer, scheduler, scaler, state, identity, metadata, context)
            atomic_write_text(run_dir / LOG_NAME, _log_csv(state.log))
            print(
                f"epoch {state.epoch}/{protocol.epochs}: loss {state.log[-1]['train_loss']:.4f}, "
                f"val dice {last_val_dice:.4f}, {state.log[-1]['iterations_per_second']:.2f} it/s",
                flush=True,
            )
        barrier(context)

    return TrainResult(
        run_dir=run_dir,
        steps=state.step,
        epochs=state.epoch,
        best_val_dice=state.best_val_dice,
        best_epoch=state.best_epoch,
        final_val_dice=last_val_dice,
        train_seconds=state.train_seconds,
        memory=state.memory,
        resumed_from_step=resumed_from,
        resumed_train_seconds=resumed_seconds,
    )


def _forward_loss(
    model: nn.Module,
    batch: dict,
    loss_function: SegmentationLoss,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    precision: str,
) -> torch.Tensor:
    """The loss of one batch (with its graph); backward waits until the loss is known to be finite."""
    model.train()
    images = batch["image"].to(device, non_blocking=True)
    masks = batch["mask"].to(device, non_blocking=True)
    optimizer.zero_grad(set_to_none=True)
    with autocast(precision, device):
        outputs = model(images)
    return loss_function(outputs, masks)


def _backward_and_update(
    model: nn.Module,
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    protocol: Protocol,
) -> None:
    scaler.scale(loss).backward()
    if protocol.grad_clip_norm is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), protocol.grad_clip_norm)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()


def _wrap_distributed(model: nn.Module, context: DistributedContext, device: torch.device, protocol: Protocol) -> nn.Module:
    if not context.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    # Without deep supervision the auxiliary heads receive no gradient; DDP must be told.
    return DistributedDataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=not protocol.loss.deep_supervision,
    )


def weights_payload(model: nn.Module, identity: dict, state: LoopState) -> dict:
    """What `best.pt` holds: the weights and how to rebuild the model (no optimizer state)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "model_spec": getattr(model, "usemabench_spec", None),
        "identity": identity,
        "epoch": state.best_epoch,
        "val_dice": state.best_val_dice,
    }


def _save_last(run_dir, model, optimizer, scheduler, scaler, state: LoopState, identity: dict, metadata: dict, context) -> None:
    if not context.is_main:
        return
    save_checkpoint(run_dir / LAST, {
        **metadata,
        "format": CHECKPOINT_FORMAT,
        "identity": identity,
        "model": model.state_dict(),
        "model_spec": getattr(model, "usemabench_spec", None),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": capture_rng_state(),
        "loop": {key: value for key, value in vars(state).items() if key != "log"},
        "log": state.log,
    })


def _resume(path: Path, identity: dict, model, optimizer, scheduler, scaler) -> LoopState:
    payload = load_checkpoint(path)
    stored = payload.get("identity", {})
    if payload.get("format") != CHECKPOINT_FORMAT or stored != identity:
        differences = sorted(key for key in set(stored) | set(identity) if stored.get(key) != identity.get(key))
        raise CheckpointError(
            f"{path} belongs to a different run (differs in: {', '.join(differences) or 'format'}); "
            f"delete {path.parent} or choose another --runs-dir"
        )
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    scaler.load_state_dict(payload["scaler"])
    restore_rng_state(payload["rng"])
    state = LoopState(**payload["loop"], log=list(payload["log"]))
    print(f"resuming {path.parent} from step {state.step} (epoch {state.epoch + 1}, batch {state.batch})", flush=True)
    return state


def _log_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _peak_memory(device: torch.device, earlier: dict[str, Any]) -> dict[str, Any]:
    """Peak memory of training so far: the CUDA allocator's peak on a GPU, at least the `earlier` peak.

    `earlier` is what the processes before this one measured (kept in last.pt): measured only while steps
    run, the peak of a run resumed once or many times covers all of them, and a re-run of a finished run
    (no steps, only weights and optimizer state loaded) reports theirs unchanged.
    On the CPU only the process's peak resident size is known; it includes Python, the libraries and
    every earlier run of the process, so it is recorded under its own name, not as the model's peak
    (the profiler's training-mode records measure that).
    """
    if device.type == "cuda":
        measured = {
            "peak_memory_bytes": int(torch.cuda.max_memory_allocated(device)),
            "memory_method": "torch.cuda.max_memory_allocated over training (the largest of its processes)",
        }
    else:  # ru_maxrss is in KiB on Linux.
        measured = {"process_peak_rss_bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024}
    return {key: max(value, earlier.get(key, value)) if isinstance(value, int) else value for key, value in measured.items()}
