"""Training loop: bitwise resume after an interruption, NaN handling, checkpoints and the epoch log."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest
import torch

import usemabench.runners.train as train_module
from runner_helpers import BlobDataset, TinyNet
from usemabench.runners.checkpoint import BEST, LAST, CheckpointError, load_checkpoint
from usemabench.runners.protocol import load_protocol, protocol_from_dict
from usemabench.runners.seeding import seed_everything
from usemabench.runners.train import LOG_COLUMNS, LOG_NAME, NonFiniteLossError, TrainingInterrupted, train

CPU = torch.device("cpu")


def tiny_protocol(**changes):
    contents = dict(load_protocol("quick").contents)
    contents.update(
        resolution=[32, 32], batch_size=4, epochs=3, iterations_per_epoch=4, checkpoint_every_iterations=3,
        schedule={"name": "poly", "power": 0.9, "warmup_iterations": 2},
    )
    contents.update(changes)
    return protocol_from_dict(contents, source="test protocol")


def run_training(run_dir, protocol, seed=0, model=None, **kwargs):
    seed_everything(seed)
    model = model or TinyNet()
    result = train(
        model, BlobDataset(augment=True), BlobDataset(count=4, seed=1), protocol,
        seed=seed, run_dir=run_dir, num_classes=2, device=CPU, progress=False, **kwargs,
    )
    return model, result


def test_resume_after_interruption_is_bitwise_identical(tmp_path):
    protocol = tiny_protocol()
    reference, reference_result = run_training(tmp_path / "uninterrupted", protocol)

    # Killed at step 7: the mid-epoch checkpoint of step 6 (epoch 2, batch 2) is the last one on disk.
    with pytest.raises(TrainingInterrupted):
        run_training(tmp_path / "resumed", protocol, stop_after_steps=7)
    assert load_checkpoint(tmp_path / "resumed" / LAST)["loop"]["step"] == 6
    resumed, resumed_result = run_training(tmp_path / "resumed", protocol)

    assert resumed_result.resumed_from_step == 6
    assert resumed_result.steps == reference_result.steps == 12
    for (name, expected), actual in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(expected, actual), name
    assert resumed_result.best_val_dice == reference_result.best_val_dice
    assert resumed_result.final_val_dice == reference_result.final_val_dice
    expected_log = [{k: row[k] for k in ("epoch", "step", "train_loss", "val_dice", "lr")} for row in _read_log(tmp_path / "uninterrupted")]
    actual_log = [{k: row[k] for k in ("epoch", "step", "train_loss", "val_dice", "lr")} for row in _read_log(tmp_path / "resumed")]
    assert actual_log == expected_log


def peak_rss_will_read(monkeypatch, kib):
    """This process's peak resident size, as the CPU memory figure reads it from now on (KiB, as Linux gives it)."""
    monkeypatch.setattr(train_module.resource, "getrusage", lambda who: SimpleNamespace(ru_maxrss=kib))


def test_the_memory_peak_covers_every_process_and_a_finished_run_keeps_it(tmp_path, monkeypatch):
    protocol = tiny_protocol(epochs=2)
    peak_rss_will_read(monkeypatch, 3000)
    with pytest.raises(TrainingInterrupted):
        run_training(tmp_path, protocol, stop_after_steps=4)  # last.pt of step 3 stays
    peak_rss_will_read(monkeypatch, 2000)  # the resuming process peaks lower: the first one's peak stands
    _, resumed = run_training(tmp_path, protocol)
    assert resumed.resumed_from_step == 3 and resumed.memory == {"process_peak_rss_bytes": 3000 * 1024}
    peak_rss_will_read(monkeypatch, 9000)  # e.g. a larger run earlier in this process; this one trains nothing
    _, again = run_training(tmp_path, protocol)
    assert again.resumed_from_step == again.steps == 8
    assert again.memory == resumed.memory and again.train_seconds == resumed.train_seconds


def test_another_seed_gives_other_weights(tmp_path):
    protocol = tiny_protocol(epochs=1)
    first, _ = run_training(tmp_path / "a", protocol, seed=0)
    second, _ = run_training(tmp_path / "b", protocol, seed=1)
    assert not torch.equal(first.head.weight, second.head.weight)


def test_finished_run_restarted_does_nothing_more(tmp_path):
    protocol = tiny_protocol(epochs=1)
    model, result = run_training(tmp_path, protocol)
    again, again_result = run_training(tmp_path, protocol)
    assert again_result.resumed_from_step == result.steps
    assert torch.equal(model.head.weight, again.head.weight)


def test_epoch_log_and_checkpoints(tmp_path):
    protocol = tiny_protocol()
    _, result = run_training(tmp_path, protocol)
    rows = _read_log(tmp_path)
    assert list(rows[0]) == list(LOG_COLUMNS)
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    assert [int(row["step"]) for row in rows] == [4, 8, 12]
    best = load_checkpoint(tmp_path / BEST)
    assert best["val_dice"] == result.best_val_dice == max(float(row["val_dice"]) for row in rows)
    assert 0.0 <= result.best_val_dice <= 1.0
    assert "optimizer" not in best and "optimizer" in load_checkpoint(tmp_path / LAST)


def test_nan_loss_stops_naming_the_step_and_keeps_last_good_checkpoint(tmp_path):
    protocol = tiny_protocol(checkpoint_every_iterations=0)
    # Forward calls: 4 training steps + 4 validation cases in epoch 1, then 2 good steps: NaN at step 7.
    with pytest.raises(NonFiniteLossError, match=r"at step 7 \(epoch 2, batch 3\).*last good checkpoint: .*last\.pt"):
        run_training(tmp_path, protocol, model=TinyNet(nan_after_calls=10))
    kept = load_checkpoint(tmp_path / LAST)
    assert kept["loop"]["step"] == 4
    assert all(torch.isfinite(value).all() for value in kept["model"].values() if value.is_floating_point())


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path):
    run_training(tmp_path, tiny_protocol(epochs=1))
    with pytest.raises(CheckpointError, match="protocol_hash"):
        run_training(tmp_path, tiny_protocol(epochs=2))


def _read_log(run_dir):
    with open(run_dir / LOG_NAME, newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_loop_runs_under_autocast(tmp_path, precision):
    # The GPU paths (autocast, fp16 grad scaling) exercised on the CPU, where autocast also exists.
    _, result = run_training(tmp_path, tiny_protocol(epochs=1), precision=precision)
    assert result.steps == 4 and 0.0 <= result.final_val_dice <= 1.0
    scaler_state = load_checkpoint(tmp_path / LAST)["scaler"]
    assert ("scale" in scaler_state) == (precision == "fp16")  # loss scaling for fp16 only, saved for resume
