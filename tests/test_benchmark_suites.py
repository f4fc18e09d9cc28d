"""Every step of the GPU suite and of the CPU suite runs (in --tiny mode, on a CPU) and records its JSON; the
renderer turns such JSON into the Markdown blocks of RESULTS.md and docs/speed.md. Timings are not checked here."""
import json
import os
import subprocess
import sys

import pytest
from helpers import make_voc_folder

from benchmarks.record import parse_tables
from benchmarks.render_results import BEGIN, END
from benchmarks.render_results import main as render_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPECTED = {"tests": " passed", "infer": "| SSD300 | eager |", "post": "| random |", "train": "| ours",
            "eval": "| devkit scoring s |", "data": "train augmentation", "shapes": "| mAP", "bccd": "| mAP",
            "accuracy": "| a+b | ours (mobilenet_v3"}


@pytest.mark.parametrize("step", list(EXPECTED))
def test_suite_step_runs_tiny_and_records_json(step, tmp_path):
    env = dict(os.environ, OUT=str(tmp_path / "out"), PYTHON=sys.executable, WORKERS="0")
    if step in ("bccd", "accuracy"):
        images = {f"b{i}": ([("RBC", 5, 5, 40, 40), ("WBC", 30, 8, 60, 30), ("Platelets", 2, 30, 12, 44)], 64, 48)
                  for i in range(4)}
        make_voc_folder(tmp_path / "bccd", images, sets={"trainval": ["b0", "b1"], "test": ["b2", "b3"]})
        env.update(BCCD=str(tmp_path / "bccd"), DEVICE="cpu")
    result = subprocess.run(["bash", "benchmarks/gpu_suite.sh", step, "--tiny"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    record = json.loads((tmp_path / "out" / f"{step}.json").read_text())
    assert record["step"] == step and record["device"] and record["commands"] and record["wall_s"] is not None
    assert EXPECTED[step] in (tmp_path / "out" / f"{step}.txt").read_text()
    if step != "tests":  # pytest prints no table
        assert record["tables"], record


CPU_EXPECTED = {"train-step": "| ours SSDLite320 | bfloat16 autocast |", "infer": "| SSD300 | eager |",
                "runtimes": "| SSDLite320 (ours) | onnxruntime fp32 |",
                "lite": "| EfficientNet-Lite0 SSDLite320 (ours) | onnxruntime fp32 |",
                "post": "| random |", "eval": "| devkit scoring s |",
                "backbones": "| mobilenet_v3 SSD320 |", "cpu-check": "| off |", "data": "train augmentation",
                "scale": "full COCO construction"}


@pytest.mark.parametrize("step", list(CPU_EXPECTED))
def test_cpu_suite_step_runs_tiny_and_records_json(step, tmp_path):
    env = dict(os.environ, OUT=str(tmp_path / "out"), PYTHON=sys.executable)
    result = subprocess.run(["bash", "benchmarks/cpu_suite.sh", step, "--tiny"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    record = json.loads((tmp_path / "out" / f"{step}.json").read_text())
    assert record["step"] == step and record["device"].startswith("CPU") and record["commands"]
    assert CPU_EXPECTED[step] in (tmp_path / "out" / f"{step}.txt").read_text()
    assert record["tables"] or step == "scale", record


def test_bccd_step_needs_its_folder(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable, BCCD="")
    result = subprocess.run(["bash", "benchmarks/gpu_suite.sh", "bccd", "--tiny"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "set BCCD" in result.stderr


def test_renderer_writes_the_tables_between_the_markers(tmp_path):
    text = "SSD300 training step, batch 32, H100\n| model | img/s |\n|---|---|\n| ours | 2000.0 |\n\nspeed-up: 5x\n"
    table = parse_tables(text)[0]
    assert table == {"title": "SSD300 training step, batch 32, H100", "header": ["model", "img/s"],
                     "rows": [["ours", "2000.0"]]}
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "train.json").write_text(json.dumps({
        "step": "train", "device": "NVIDIA H100 80GB HBM3", "date": "2026-11-24", "commands": ["python -m x"],
        "wall_s": 300, "tables": [table], "lines": ["speed-up over torchvision: 5.00x"]}))
    target = tmp_path / "RESULTS.md"
    target.write_text(f"# results\n{BEGIN}\nold\n{END}\nafter\n")
    render_main([str(folder), "--write", "--targets", str(target)])
    written = target.read_text()
    assert "old" not in written and written.endswith(f"{END}\nafter\n")
    assert "#### train: NVIDIA H100 80GB HBM3, 2026-11-24, 300 s" in written
    assert "| ours | 2000.0 |" in written and "- speed-up over torchvision: 5.00x" in written
