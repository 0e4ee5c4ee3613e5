"""The cost of the data hash (run identity from content): first run, second run, and after one file changed.

A fresh, empty fingerprint cache is used, so the first run hashes every image and mask of the dataset's
split file; the second run finds every file in the cache (same size and mtime) and hashes none; the third
run follows a touch of one mask (new mtime) and re-hashes that file only. The OS page cache is not dropped
(that needs root and a quiet machine): the first figure is for files recently read, as after a `verify`.

Usage (one `bench` record under --records-dir):
    python benchmarks/bench_data_hash.py                  # dsb2018: 729 cases, the largest shared set by bytes
    python benchmarks/bench_data_hash.py --dataset kvasir_seg
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from usemabench.datasets import DatasetError, get_dataset_spec
from usemabench.datasets.fingerprint import dataset_fingerprint, split_cases_by_source
from usemabench.datasets.splits import split_entry
from usemabench.core.records import environment_info, make_record, record_filename, write_record


def _timed_fingerprint(spec) -> tuple[float, str]:
    started = time.perf_counter()
    data_hash = dataset_fingerprint(spec).data_hash
    return time.perf_counter() - started, data_hash


def _case_files(spec) -> list[Path]:
    return [
        path
        for source, case_ids in split_cases_by_source(spec).values()
        for case_id in case_ids
        for path in (source.case_files(case_id) or {}).values()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="dsb2018", help="registered name or source URI (default dsb2018)")
    parser.add_argument("--records-dir", type=Path, default=Path("leaderboard/records/bench"))
    args = parser.parse_args(argv)
    try:
        spec = get_dataset_spec(args.dataset)
        files = _case_files(spec)
    except DatasetError as error:
        print(f"bench_data_hash.py: {error}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as cache:
        os.environ["USEMABENCH_CACHE"] = cache  # an empty fingerprint cache: the first run hashes every file
        load_before = os.getloadavg()[0]
        first_s, first_hash = _timed_fingerprint(spec)
        second_s, second_hash = _timed_fingerprint(spec)
        touched = files[-1]
        os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 1))
        try:
            third_s, third_hash = _timed_fingerprint(spec)
        finally:
            os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns - 1))
    if not first_hash == second_hash == third_hash:
        print("bench_data_hash.py: the data hash changed between runs on unchanged content", file=sys.stderr)
        return 1
    metrics = {
        "first_run_s": round(first_s, 4),
        "second_run_s": round(second_s, 4),
        "one_file_touched_s": round(third_s, 4),
        "files": len(files),
        "megabytes": round(sum(path.stat().st_size for path in files) / 1e6, 1),
    }
    cost = {
        "mode": "data-hash",
        "timing_method": "time.perf_counter around dataset_fingerprint; fresh fingerprint cache; OS page cache not dropped",
        "cpu_load_average_1min_before": load_before,
    }
    dataset = {**split_entry(spec, "train"), "split": "all", "data_hash": first_hash}
    record = make_record("bench", dataset=dataset, metrics=metrics, cost=cost, environment=environment_info("cpu"))
    path = write_record(record, args.records_dir, record_filename(record).replace("bench_", "bench_data_hash_", 1))
    print(
        f"{spec.name}: {len(files)} files, {metrics['megabytes']} MB: first run {first_s:.2f} s, second {second_s:.3f} s, "
        f"one file touched {third_s:.3f} s (load average {load_before:.1f}) -> {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
