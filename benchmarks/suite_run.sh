# Sourced by gpu_suite.sh and cpu_suite.sh (with $out and $py set): creates $out, and defines
# run_steps WANTED STEP...: the suite's step_WANTED, or every step in order for "all";
# run STEP COMMAND...: the commands' output into $out/STEP.txt, then $out/STEP.json (benchmarks/record.py).
mkdir -p "$out"
export PYTHONUNBUFFERED=1

run_steps() {  # run_steps WANTED STEP...: the step asked for, or every one in order for "all"
    local wanted="$1"; shift
    if [[ "$wanted" == all ]]; then
        for s in "$@"; do "step_$s"; done
        return
    fi
    for s in "$@"; do
        if [[ "$s" == "$wanted" ]]; then "step_$s"; return; fi
    done
    echo "unknown step '$wanted': $* all" >&2
    exit 2
}

run() {
    local name="$1"; shift
    local start=$SECONDS
    : > "$out/$name.txt"
    local commands=()
    for command in "$@"; do
        commands+=(--command "$command")
        echo "\$ $command" | tee -a "$out/$name.txt"
        bash -c "$command" 2>&1 | tee -a "$out/$name.txt"
    done
    $py -m benchmarks.record --step "$name" --raw "$out/$name.txt" --json "$out/$name.json" \
        --wall-s $((SECONDS - start)) "${commands[@]}"
}
