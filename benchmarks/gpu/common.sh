# Sourced by the GPU session scripts: packages the GPU machine lacks (carried as wheels in .whl/), the
# package from this checkout, and `step NAME SECONDS CMD...`, which runs one step under a time limit,
# logs it, and goes on whatever happens, so one failing step never costs the rest of a short GPU lease.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || echo "wheel install failed"
export PYTHONPATH="/tmp/site:$PWD"
# At most 8 files come back from $OUT: everything is packed into one archive when the script exits.
RESULTS=/tmp/gpu_results
mkdir -p "$RESULTS/logs"
trap 'tar czf "${OUT:-/tmp}/gpu_results.tgz" -C /tmp gpu_results; cp "$RESULTS/logs/steps.txt" "${OUT:-/tmp}/" 2>/dev/null' EXIT
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$RESULTS/logs/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$RESULTS/logs/gpu.txt"

step() {
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout "$limit" "$@" > "$RESULTS/logs/$name.log" 2>&1
  local code=$?
  printf '%-28s rc=%-3s %4ss\n' "$name" "$code" "$((SECONDS - start))" | tee -a "$RESULTS/logs/steps.txt"
  tail -n 4 "$RESULTS/logs/$name.log"
  # Pack after every step: a call killed at its time limit still returns everything finished so far.
  tar czf "${OUT:-/tmp}/gpu_results.tgz" -C /tmp gpu_results
}
