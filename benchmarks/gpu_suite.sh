#!/usr/bin/env bash
# Everything the README and benchmarks/RESULTS.md still need from a GPU, in one run (about 40 minutes on one
# H100 with 16 cores). Writes logs to ${OUT:-results/gpu_suite}/; paste the tables into RESULTS.md and README with
# the device.
#   bash benchmarks/gpu_suite.sh [quick]     # quick: tests and benchmarks only, no training runs
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-results/gpu_suite}"
mkdir -p "$out"
py="${PYTHON:-python}"
workers="${WORKERS:-16}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/device.txt" 2>&1
# the CUDA-only tests (CUDA graph and torch.compile against eager), then the whole suite on this machine
$py -m pytest -q tests/test_fast_paths.py 2>&1 | tee "$out/tests_cuda.txt"
$py -m benchmarks.bench_inference --batch-size 256 --amp bf16 --channels-last --size 300 512 2>&1 \
    | tee "$out/inference_bf16.txt"
$py -m benchmarks.bench_train_step --batch-size 32 --amp off 2>&1 | tee "$out/train_step_fp32.txt"
$py -m benchmarks.bench_train_step --batch-size 32 --amp bf16 --channels-last 2>&1 | tee "$out/train_step_bf16.txt"
for flags in "" "--compile"; do
    $py -m benchmarks.bench_train --batch-size 32 --amp bf16 --channels-last $flags --workers "$workers" 2>&1 \
        | tee -a "$out/train_end_to_end.txt"
done
$py -m benchmarks.bench_train --batch-size 32 --amp bf16 --channels-last --compile --size 512 --workers "$workers" \
    2>&1 | tee -a "$out/train_end_to_end.txt"
$py -m benchmarks.bench_eval --batch-size 64 --amp bf16 --channels-last --cuda-graph --workers "$workers" 2>&1 \
    | tee "$out/eval_voc07_sized.txt"
$py -m benchmarks.bench_data --images 2000 --workers 1 8 "$workers" 2>&1 | tee "$out/data.txt"
[[ "${1:-}" == "quick" ]] && exit 0
# the README's main command, timed, and its mAP
/usr/bin/time -v $py train.py --dataset shapes --amp bf16 --channels-last --workers "$workers" \
    --output "$out/shapes" 2>&1 | tee "$out/shapes_train.txt" | tail -20
# BCCD from scratch: BN variant, higher LR with warm-up ($BCCD: a copy where ../shared does not travel)
bccd="${BCCD:-../shared/data/bccd}"
if [[ -d "$bccd" ]]; then
    /usr/bin/time -v $py train.py --dataset VOC --dataset-root "$bccd" --sets trainval --test-sets test \
        --labels RBC WBC Platelets --basenet none --batch-norm --lr 1e-2 --warmup-iters 500 --max-iter 6000 \
        --lr-steps 4000 5200 --amp bf16 --channels-last --workers "$workers" --eval-every 2000 \
        --output "$out/bccd" 2>&1 | tee "$out/bccd_train.txt" | tail -20
fi
