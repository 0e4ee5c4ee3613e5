#!/usr/bin/env bash
# The GPU session in phases, each sized to fit a call under 10 minutes on an H100:
#   scan      selective-scan benchmark with the Triton tile sweep (about 1 minute)
#   sema      SEMA benchmark (about 75 s)
#   train     gpu-short training + evaluation on DSB2018 of $TRAIN_MODELS (default: the five leaderboard
#             models; about 6 minutes)
#   scaling   the scaling profile, bf16, infer and train, 256-2048 px, one step per model (about 3 minutes)
#   extras    usema_s_full with plain (math) attention, and VM-UNet with the Triton scan (about 2 minutes)
#   mamba     build mamba-ssm's scan for this GPU, check triton and cuda against the reference, then all three
#             scan backends with the tile sweep and per-kernel times in one run (about 7 minutes, not yet run;
#             needs its sdist in .whl/src/, see build_mamba_ssm.sh)
#   speed     issue 20's targets, one call: USEMA-S vs the CNN U-Net training step at 1024^2 (batch 1) in every
#             execution mode, usema_s_full (flash SDPA) beside usema_s at 512/1024 (not yet run; sized by guess:
#             torch.compile ~1 min per model and size on the GPU)
#   speed_batch  the same at 256^2 with the gpu-short batch (16), and nnunet at 2048^2 for its MFU (not yet run)
#   modes     every execution mode for the six leaderboard models at 256-2048, infer and train (several calls:
#             pass MODES_MODELS to split it; not yet run)
#   kernels = scan sema; profile = scaling extras
# Usage: bash benchmarks/gpu/session.sh PHASE [PHASE...]; carry .whl and .gpu_data (compact DSB2018 copy).
# Results come back as gpu_results.tgz; step times are in logs/steps.txt.
source "$(dirname "$0")/common.sh"
export USEMABENCH_DATA="$PWD/.gpu_data" USEMABENCH_CACHE=/tmp/usemabench-cache
RECORDS="$RESULTS/records"

scan() {
  step bench_scan 100 python3 benchmarks/bench_scan.py --lengths 4096 16384 65536 262144 --backends triton --sweep \
    --records-dir "$RECORDS/bench"
}

mamba() {
  step build_mamba_ssm 300 bash benchmarks/gpu/build_mamba_ssm.sh
  step check_scan 90 python3 benchmarks/bench_scan.py --check --backends triton cuda
  step bench_scan_all 200 python3 benchmarks/bench_scan.py --lengths 4096 16384 65536 262144 --backends torch triton cuda \
    --sweep --records-dir "$RECORDS/bench"
}

sema() {
  step bench_sema 90 python3 benchmarks/bench_sema.py --device cuda --tokens 4096 16384 65536 262144 --records-dir "$RECORDS/bench"
}

train() {
  # Seen on an H100: 42-100+ s per model with evaluation (transunet slowest).
  for model in ${TRAIN_MODELS:-usema_s usema_s_none nnunet umamba_bot transunet}; do
    step "train_$model" 170 python3 -m usemabench run --model "$model" --dataset dsb2018 --protocol gpu-short --seed 0 \
      --device cuda --no-progress --runs-dir /tmp/runs --records-dir "$RECORDS/dsb2018"
  done
}

profile_models() {  # profile_models STEP SECONDS MODELS RESOLUTIONS MODE [extra profile arguments]
  local name=$1 limit=$2 models=$3 resolutions=$4 mode=$5; shift 5
  step "$name" "$limit" python3 -m usemabench profile --models "$models" --resolutions "$resolutions" --batch 1 \
    --device cuda --precision bf16 --mode "$mode" --repeats 5 --warmup 2 --records-dir "$RECORDS/profile" "$@"
}

scaling() {
  # One step per model, most needed first, so one slow model cannot cost the others their records.
  for model in usema_s usema_s_full nnunet transunet umamba_bot usema_t; do
    profile_models "profile_$model" 60 "$model" 256,512,1024,2048 both
  done
}

EXEC_ALL=eager,channels_last,compile,channels_last+compile

profile_exec() {  # profile_exec STEP SECONDS MODELS RESOLUTIONS MODE BATCH EXEC: bf16 profiles in execution modes
  local name=$1 limit=$2 models=$3 resolutions=$4 mode=$5 batch=$6 exec=$7
  step "$name" "$limit" python3 -m usemabench profile --models "$models" --resolutions "$resolutions" --batch "$batch" \
    --device cuda --precision bf16 --mode "$mode" --exec "$exec" --repeats 5 --warmup 2 --records-dir "$RECORDS/profile"
}

speed() {
  profile_exec speed_usema_s_1024 200 usema_s 1024 train 1 "$EXEC_ALL"
  profile_exec speed_nnunet_1024 150 nnunet 1024 train 1 "$EXEC_ALL"
  profile_exec speed_full_vs_sema 90 usema_s_full,usema_s 512,1024 train 1 eager
}

speed_batch() {
  profile_exec speed_b16_256 200 usema_s,nnunet 256 train 16 "$EXEC_ALL"
  profile_exec speed_nnunet_2048 150 nnunet 2048 train 1 channels_last,channels_last+compile
}

modes() {
  for model in ${MODES_MODELS:-usema_t usema_s usema_s_full nnunet umamba_bot transunet}; do
    profile_exec "modes_$model" 500 "$model" 256,512,1024,2048 both 1 "$EXEC_ALL"
  done
}

extras() {
  profile_models profile_plain_attention 60 usema_s_full 256,512,1024 train --sdpa math
  profile_models profile_vmunet_triton 60 vmunet 256,512,1024 both
}

for phase in "$@"; do
  case "$phase" in
    scan|sema|mamba|train|scaling|extras|speed|speed_batch|modes) "$phase" ;;
    kernels) scan; sema ;;
    profile) scaling; extras ;;
    *) echo "unknown phase $phase (scan, sema, mamba, train, scaling, extras, speed, speed_batch, modes, kernels, profile)"; exit 2 ;;
  esac
done
cat "$RESULTS/logs/steps.txt"
