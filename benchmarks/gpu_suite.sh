#!/usr/bin/env bash
# Every GPU number of docs/speed.md and benchmarks/RESULTS.md, as independent steps of under 8 minutes each on one H100
# (about 40 minutes in all, the first torch.compile included), so that the suite fits short GPU slots:
#
#   bash benchmarks/gpu_suite.sh STEP [--tiny]     STEP: tests infer post train eval data shapes bccd accuracy | all
#
# Each step writes its raw output to ${OUT:-results/gpu_suite}/STEP.txt and a machine-readable STEP.json (device
# name, date, the commands, every table printed); `python -m benchmarks.render_results DIR --write` turns the
# JSON files into RESULTS.md's and docs/speed.md's tables. The bccd step reads the BCCD folder from $BCCD (a VOC-style
# folder). --tiny: seconds-long settings that run anywhere (the tests run every step so on a CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
step="${1:?usage: bash benchmarks/gpu_suite.sh tests|infer|post|train|eval|data|shapes|bccd|accuracy|all [--tiny]}"
tiny="${2:-}"
out="${OUT:-results/gpu_suite}"
py="${PYTHON:-python}"
workers="${WORKERS:-16}"

if [[ "$tiny" == "--tiny" ]]; then
    B=1; STEPS="--steps 1 --warmup 0"; IMAGES=2; workers=0; SIZES=300; AMP=""; COMPILE=""; GRAPH=""
    DATA_WORKERS="1"
    SHAPES="--max-iter 2 --batch-size 2 --shapes-train-images 4 --shapes-test-images 2 --eval-every 0 --warmup-iters 0"
    BCCD_SCHEDULE="--max-iter 2 --batch-size 2 --eval-every 0 --warmup-iters 0"
    ACCURACY="--budget 4 --batch-size 2 --seeds 0 --evals 1 --workers 0"
else
    B=""; STEPS=""; IMAGES=""; SIZES="300 512"; AMP="--amp bf16 --channels-last"; COMPILE="--compile"
    GRAPH="--cuda-graph"; DATA_WORKERS="1 8 $workers"
    SHAPES=""
    BCCD_SCHEDULE="--lr 1e-2 --warmup-iters 500 --max-iter 1500 --lr-steps 1000 1300 --eval-every 500"
    ACCURACY="--budget 48000 --batch-size 32 --seeds 0 1 --evals 4 --workers $workers"
fi

. benchmarks/suite_run.sh  # creates $out; run_steps, run STEP COMMAND...

step_tests() {  # the CUDA-only tests (CUDA graphs, torch.compile, the NMS kernel on the GPU, a sync-free step)
    run tests "$py -m pytest -q tests/test_fast_paths.py tests/test_nms_kernel.py tests/test_train.py -k 'cuda or graph or compile or kernel or never_waits'"
}
step_infer() {
    run infer "$py -m benchmarks.bench_inference --batch-size ${B:-256} ${STEPS} ${AMP} --size ${SIZES}" \
        "$py -m benchmarks.bench_backbones --batch-size $(( ${B:-64} > 1 ? ${B:-64} : 2 )) ${STEPS} ${AMP}"
}
step_post() {
    run post "$py -m benchmarks.bench_postprocess --batch-size ${B:-256} ${STEPS}"
}
step_train() {
    run train "$py -m benchmarks.bench_train_step --batch-size ${B:-32} ${STEPS} ${AMP}" \
        "$py -m benchmarks.bench_train --batch-size ${B:-32} ${STEPS} ${AMP} ${COMPILE} --workers $workers --images ${IMAGES:-2000}" \
        "$py -m benchmarks.bench_train --batch-size ${B:-32} ${STEPS} ${AMP} ${COMPILE} --workers $workers --images ${IMAGES:-2000} --size ${SIZES##* } --skip-torchvision"
}
step_eval() {
    run eval "$py -m benchmarks.bench_eval --images ${IMAGES:-4952} --batch-size ${B:-64} ${AMP} ${GRAPH} --workers $workers"
}
step_data() {
    run data "$py -m benchmarks.bench_data --images ${IMAGES:-2000} --workers ${DATA_WORKERS}"
}
step_shapes() {  # the README's main command on the GPU: wall time and final mAP
    run shapes "$py train.py --dataset shapes ${AMP} --workers $workers ${SHAPES} --output $out/shapes-run"
}
need_bccd() {
    if [[ -z "${BCCD:-}" || ! -d "${BCCD}" ]]; then
        echo "$1: set BCCD to the BCCD VOC-style folder (Annotations/, JPEGImages/, ImageSets/Main/)" >&2
        exit 2
    fi
}
step_bccd() {  # BCCD from scratch with the README's recipe
    need_bccd bccd
    run bccd "$py train.py --dataset VOC --dataset-root $BCCD --sets trainval --test-sets test --class-names RBC WBC Platelets --basenet none --batch-norm ${AMP} --workers $workers ${BCCD_SCHEDULE} --output $out/bccd-run"
}

step_accuracy() {  # ours beside torchvision from scratch at equal budget, both set-ups, SSD300 and SSDLite320
    need_bccd accuracy
    local data="--dataset VOC --dataset-root $BCCD --class-names RBC WBC Platelets"
    run accuracy "$py -m benchmarks.bench_accuracy --arch vgg16 $data ${ACCURACY} --device ${DEVICE:-cuda} --json $out/accuracy-vgg16-raw.json --curve $out/accuracy-vgg16.png" \
        "$py -m benchmarks.bench_accuracy --arch mobilenet_v3 $data ${ACCURACY} --device ${DEVICE:-cuda} --json $out/accuracy-ssdlite-raw.json --curve $out/accuracy-ssdlite.png"
}

run_steps "$step" tests infer post train eval data shapes bccd accuracy
