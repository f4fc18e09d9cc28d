#!/usr/bin/env bash
# One-step environment set-up: a virtualenv with everything train.py/eval.py need (and the test tools with --test).
# Usage: bash scripts/setup.sh [--test]    (virtualenv path: $SSD_VENV, default .venv in the repo root)
# On a machine without an NVIDIA GPU, PyTorch's CPU build comes from PyTorch's CPU wheel index (as PyTorch's install
# page tells CPU users: no gigabytes of CUDA libraries); where that index cannot be reached, the default index's
# build is installed instead, with a line saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SSD_VENV:-.venv}"
reqs=requirements.txt
[[ "${1:-}" == "--test" ]] && reqs=requirements-test.txt
stamp="$venv/.installed-$(cat requirements.txt requirements-test.txt build-constraints.txt | sha256sum | cut -c1-16)-$reqs"
cpu_index="https://download.pytorch.org/whl/cpu"
if [[ ! -f "$stamp" ]]; then
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade "pip>=25.3"
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        torch_pins=$(grep -E '^(torch|torchvision)==' requirements.txt | cut -d' ' -f1)
        if "$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('$cpu_index/torch/', timeout=5)" \
                2>/dev/null; then
            # shellcheck disable=SC2086
            "$venv/bin/python" -m pip install -q --index-url "$cpu_index" $torch_pins
        else
            echo "setup: no NVIDIA GPU, but PyTorch's CPU wheel index ($cpu_index) cannot be reached: installing the default index's PyTorch build (it carries CUDA libraries this machine will not use)"
        fi
    fi
    "$venv/bin/python" -m pip install -q --build-constraint build-constraints.txt -r "$reqs"
    touch "$stamp"
fi
