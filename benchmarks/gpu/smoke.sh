#!/usr/bin/env bash
# A short first GPU call: do the kernels compile and agree with their references, and how fast does one
# training step of each leaderboard model run (to size the training budget of the main session)?
source "$(dirname "$0")/common.sh"
step scan_check 150 python3 benchmarks/bench_scan.py --check
step sema_gpu_tests 150 python3 -m pytest -q -x -m gpu tests/zoo/test_sema.py
step step_times 150 python3 -m usemabench profile --models usema_t,usema_s,usema_s_none,nnunet,umamba_bot,transunet \
  --resolutions 256 --batch 16 --device cuda --precision bf16 --mode train --repeats 5 --warmup 2 \
  --records-dir "$RESULTS/probe"
cat "$RESULTS/logs/steps.txt"
