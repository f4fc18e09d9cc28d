#!/usr/bin/env bash
# One-step environment set-up: a virtualenv with everything train.py/eval.py need (and the test tools with --test).
# Usage: bash scripts/setup.sh [--test]    (virtualenv path: $SSD_VENV, default .venv in the repo root)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SSD_VENV:-.venv}"
reqs=requirements.txt
[[ "${1:-}" == "--test" ]] && reqs=requirements-test.txt
stamp="$venv/.installed-$(cat requirements.txt requirements-test.txt build-constraints.txt | sha256sum | cut -c1-16)-$reqs"
if [[ ! -f "$stamp" ]]; then
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade "pip>=25.3"
    "$venv/bin/python" -m pip install -q --build-constraint build-constraints.txt -r "$reqs"
    touch "$stamp"
fi
