#!/usr/bin/env bash
# Every CPU number of docs/speed.md, docs/training.md and benchmarks/RESULTS.md, as independent steps (ours beside
# torchvision in the same process; about 25 minutes in all on 2 cores). Run it on a quiet machine: nothing else
# may use the cores meanwhile.
#
#   bash benchmarks/cpu_suite.sh STEP [--tiny]     STEP: train-step infer runtimes lite post eval backbones cpu-check data scale | all
#
# Each step writes its raw output to ${OUT:-benchmarks/results/cpu}/STEP.txt and STEP.json (device, date, the
# commands, every table printed); `python -m benchmarks.render_results --suite cpu --write` renders the JSON files
# between the `<!-- cpu-suite:begin -->` markers. --tiny: seconds-long settings (the tests run every step so).
set -euo pipefail
cd "$(dirname "$0")/.."
step="${1:?usage: bash benchmarks/cpu_suite.sh train-step|infer|runtimes|lite|post|eval|backbones|cpu-check|data|scale|all [--tiny]}"
tiny="${2:-}"
out="${OUT:-benchmarks/results/cpu}"
py="${PYTHON:-python}"

if [[ "$tiny" == "--tiny" ]]; then
    SSD300="--batch-size 2 --steps 1 --warmup 0"; SSDLITE="$SSD300"; INFER="--batch-size 1 --steps 1 --warmup 0"
    RUNTIMES="--batch-size 1 --steps 1 --warmup 0 --backbones mobilenet_v3"
    LITE="--batch-size 1 --steps 1 --warmup 0 --backbones efficientnet_lite0"
    THREADS="1"
    CHECK="--amp off --extra --max-iter 1 --batch-size 2 --shapes-train-images 2 --shapes-test-images 2 --eval-limit 2"
    POST="--batch-size 1 --steps 1 --warmup 0"; EVAL="--images 2 --batch-size 2 --workers 0"; DATA="--images 8 --workers 1"; SCALE="--coco-images 200 --voc-images 100 --workers 1"
else
    SSD300="--batch-size 4 --steps 4 --warmup 1"; SSDLITE="--batch-size 16 --steps 10 --warmup 2"
    INFER="--batch-size 4 --steps 3 --warmup 1"; THREADS="1 2"
    RUNTIMES="--batch-size 4 --steps 10 --warmup 3 --int8 --backbones vgg16 mobilenet_v3 resnet50"
    LITE="--batch-size 4 --steps 10 --warmup 3 --int8 --backbones efficientnet_lite0 mobilenet_v3"
    CHECK="--amp bf16 auto --examples docs/cpu_main_command.jpg"; DATA="--images 400 --workers 1 2"
    POST="--steps 3 --warmup 1"; EVAL="--images 32 --batch-size 8 --workers 1"; SCALE=""
fi

. benchmarks/suite_run.sh  # creates $out; run_steps, run STEP COMMAND...

step_train-step() {  # the training step of SSD300 and SSDLite320, float32 and bfloat16, one and two threads
    local commands=()
    for threads in $THREADS; do
        commands+=("$py -m benchmarks.bench_train_step --device cpu --arch vgg16 ${SSD300} --amp off bf16 --threads $threads"
                   "$py -m benchmarks.bench_train_step --device cpu --arch mobilenet_v3 ${SSDLITE} --amp off bf16 --threads $threads")
    done
    commands+=("$py -m benchmarks.bench_train_step --device cpu --arch mobilenet_v3 ${SSDLITE} --amp off bf16 --channels-last")
    run train-step "${commands[@]}"
}
step_infer() {  # PyTorch inference end to end (network + post-processing), float32 and bfloat16
    run infer "$py -m benchmarks.bench_inference --device cpu ${INFER} --size 300" \
        "$py -m benchmarks.bench_inference --device cpu ${INFER} --size 300 --amp bf16"
}
step_runtimes() {  # the whole detector on PyTorch, ONNX Runtime fp32 and INT8, ours beside torchvision's
    run runtimes "$py -m benchmarks.bench_inference --device cpu --runtime torch onnxruntime ${RUNTIMES}"
}
step_lite() {  # the pretrained EfficientNet-Lite0 SSDLite320 (own data's default) beside our MobileNetV3 SSDLite320
    # and torchvision's: training step at both precisions, and the deployed detector on each runtime
    run lite "$py -m benchmarks.bench_train_step --device cpu --arch efficientnet_lite0 ${SSDLITE} --amp off bf16 --skip-torchvision" \
        "$py -m benchmarks.bench_train_step --device cpu --arch mobilenet_v3 ${SSDLITE} --amp off bf16" \
        "$py -m benchmarks.bench_inference --device cpu --runtime torch onnxruntime ${LITE}"
}
step_post() {  # the post-processing alone: untrained and trained-like outputs, ours beside torchvision's
    run post "$py -m benchmarks.bench_postprocess --device cpu ${POST}"
}
step_eval() {  # a VOC-sized evaluation end to end: annotations, detection, devkit scoring
    run eval "$py -m benchmarks.bench_eval --device cpu ${EVAL} --amp off bf16"
}
step_backbones() {
    run backbones "$py -m benchmarks.bench_backbones --device cpu ${INFER/--batch-size 1/--batch-size 2}"
}
step_cpu-check() {  # the README's first command on this CPU, per precision
    run cpu-check "$py -m benchmarks.bench_cpu_check ${CHECK}"
}
step_data() {
    run data "$py -m benchmarks.bench_data ${DATA}"
}
step_scale() {
    run scale "$py -m benchmarks.bench_scale ${SCALE}"
}

run_steps "$step" train-step infer runtimes lite post eval backbones cpu-check data scale
