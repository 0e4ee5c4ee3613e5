#!/usr/bin/env bash
# The GPU session in phases, each sized for one call under 10 minutes on an H100:
#   kernels   SEMA and selective-scan benchmarks (about 2 minutes)
#   train     gpu-short training + evaluation of the leaderboard models on DSB2018 (about 6 minutes)
#   profile   the scaling profile, bf16, infer and train, 256-2048 px (about 4 minutes)
# Usage: bash benchmarks/gpu/session.sh PHASE [PHASE...]; carry .whl and .gpu_data (compact DSB2018 copy).
# Results come back as gpu_results.tgz; step times are in logs/steps.txt.
source "$(dirname "$0")/common.sh"
export USEMABENCH_DATA="$PWD/.gpu_data" USEMABENCH_CACHE=/tmp/usemabench-cache
RECORDS="$RESULTS/records"

kernels() {
  step bench_scan 75 python3 benchmarks/bench_scan.py --lengths 4096 16384 65536 262144 --records-dir "$RECORDS/bench"
  step bench_sema 90 python3 benchmarks/bench_sema.py --device cuda --tokens 4096 16384 65536 262144 --records-dir "$RECORDS/bench"
}

train() {
  # Seen on an H100: 42-86 s per model with evaluation (transunet slowest); 150 s leaves headroom.
  for model in usema_s usema_s_none nnunet umamba_bot transunet; do
    step "train_$model" 150 python3 -m usemabench run --model "$model" --dataset dsb2018 --protocol gpu-short --seed 0 \
      --device cuda --no-progress --runs-dir /tmp/runs --records-dir "$RECORDS/dsb2018"
  done
}

profile() {
  step profile_scaling 240 python3 -m usemabench profile \
    --models usema_t,usema_s,usema_s_full,nnunet,umamba_bot,transunet --resolutions 256,512,1024,2048 \
    --batch 1 --device cuda --precision bf16 --mode both --repeats 5 --warmup 2 --records-dir "$RECORDS/profile"
  step profile_plain_attention 60 python3 -m usemabench profile --models usema_s_full --resolutions 256,512,1024 \
    --batch 1 --device cuda --precision bf16 --mode train --sdpa math --repeats 3 --warmup 1 --records-dir "$RECORDS/profile"
  step profile_mamba_triton 60 python3 -m usemabench profile --models vmunet --resolutions 256,512,1024 \
    --batch 1 --device cuda --precision bf16 --mode both --repeats 5 --warmup 2 --records-dir "$RECORDS/profile"
}

for phase in "$@"; do
  case "$phase" in
    kernels|train|profile) "$phase" ;;
    *) echo "unknown phase $phase (kernels, train, profile)"; exit 2 ;;
  esac
done
cat "$RESULTS/logs/steps.txt"
