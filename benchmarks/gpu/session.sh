#!/usr/bin/env bash
# The main GPU session (one call, under 10 minutes on an H100): kernel benchmarks, the scaling profile,
# and short real-data training of the leaderboard models on DSB2018 (compact copy carried in .gpu_data/).
# Results come back as gpu_results.tgz; step times are in logs/steps.txt.
source "$(dirname "$0")/common.sh"
export USEMABENCH_DATA="$PWD/.gpu_data" USEMABENCH_CACHE=/tmp/usemabench-cache
RECORDS="$RESULTS/records"

step bench_scan 75 python3 benchmarks/bench_scan.py --lengths 4096 16384 65536 262144 --records-dir "$RECORDS/bench"
step bench_sema 90 python3 benchmarks/bench_sema.py --device cuda --tokens 4096 16384 65536 262144 --records-dir "$RECORDS/bench"

for model in usema_s usema_s_none nnunet umamba_bot transunet; do
  step "train_$model" 100 python3 -m usemabench run --model "$model" --dataset dsb2018 --protocol gpu-short --seed 0 \
    --device cuda --no-progress --runs-dir /tmp/runs --records-dir "$RECORDS/dsb2018"
done

step profile_scaling 150 python3 -m usemabench profile \
  --models usema_t,usema_s,usema_s_full,nnunet,umamba_bot,transunet --resolutions 256,512,1024,2048 \
  --batch 1 --device cuda --precision bf16 --mode both --repeats 5 --warmup 2 --records-dir "$RECORDS/profile"
step profile_mamba_triton 45 python3 -m usemabench profile --models vmunet --resolutions 256,512,1024 \
  --batch 1 --device cuda --precision bf16 --mode both --repeats 5 --warmup 2 --records-dir "$RECORDS/profile"
cat "$RESULTS/logs/steps.txt"
