"""Data-loader throughput: training images per second at a given resolution and worker count, on the CPU.

What is timed is what a training run pays per batch: read the files, decode, check labels, normalise,
augment (`training_transform`, preset `default`: rotation, zoom crop, flips, intensity) and collate.
The DataLoader's workers are started and `--warmup` batches consumed before the clock starts, so the
figure is the steady-state rate (worker start-up is reported separately as `first_batch_s`).

Usage (one `bench` record per worker count under --records-dir):
    python benchmarks/bench_loader.py                          # kvasir_seg at 256^2, 2 workers
    python benchmarks/bench_loader.py --dataset synthetic --workers 0 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from usemabench.datasets import DatasetError, SegmentationDataset, get_dataset_spec, training_transform
from usemabench.core.records import environment_info, make_record, record_filename, write_record


def measure(dataset: SegmentationDataset, workers: int, batch_size: int, warmup: int, timed: int, seed: int) -> dict[str, float]:
    """Seconds to the first batch and the steady-state images/s over `timed` batches after `warmup`."""
    needed = (warmup + timed) * batch_size
    if needed > len(dataset):
        raise DatasetError(f"{needed} images needed but the split has {len(dataset)}; lower --batches or --batch-size")
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers, generator=torch.Generator().manual_seed(seed), drop_last=True
    )
    started = time.perf_counter()
    batches = iter(loader)
    next(batches)
    first_batch_s = time.perf_counter() - started
    for _ in range(warmup - 1):
        next(batches)
    clock = time.perf_counter()
    for _ in range(timed):
        next(batches)
    elapsed = time.perf_counter() - clock
    del batches
    return {"images_per_s": timed * batch_size / elapsed, "seconds_per_batch": elapsed / timed, "first_batch_s": first_batch_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="kvasir_seg", help="registered name or source URI (default kvasir_seg)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=3, help="batches consumed before timing (>= 1)")
    parser.add_argument("--batches", type=int, default=20, help="timed batches")
    parser.add_argument("--augmentation", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--records-dir", type=Path, default=Path("leaderboard/records/bench"))
    args = parser.parse_args(argv)
    try:
        spec = get_dataset_spec(args.dataset)
        dataset = SegmentationDataset(spec, args.split, training_transform(spec, args.resolution, args.augmentation))
    except DatasetError as error:
        print(f"bench_loader.py: {error}", file=sys.stderr)
        return 1
    for workers in args.workers:
        load_before = os.getloadavg()[0]
        metrics = measure(dataset, workers, args.batch_size, max(1, args.warmup), args.batches, args.seed)
        cost = {
            "mode": f"data-loader-{workers}-workers",
            "workers": workers,
            "batch_size": args.batch_size,
            "warmup_batches": max(1, args.warmup),
            "timed_batches": args.batches,
            "augmentation": args.augmentation,
            "timing_method": "time.perf_counter around the timed batches, after worker start-up and warm-up",
            "cpu_load_average_1min_before": load_before,
        }
        record = make_record(
            "bench", dataset=dataset.record_entry(), resolution=[args.resolution, args.resolution], seed=args.seed,
            metrics=metrics, cost=cost, environment=environment_info("cpu"),
        )
        path = write_record(record, args.records_dir, record_filename(record).replace("bench_", "bench_loader_", 1))
        print(f"{spec.name} {args.resolution}^2, {workers} worker(s): {metrics['images_per_s']:.1f} images/s "
              f"(first batch {metrics['first_batch_s']:.2f} s, load average {load_before:.1f}) -> {path}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
