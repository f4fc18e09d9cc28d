"""The benchmark scripts run end to end (tiny CPU settings; timings are not checked) and print their tables."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("script, args, expected", [
    ("bench_inference", ["--batch-size", "1", "--steps", "1", "--warmup", "0", "--skip-torchvision"],
     "| SSD300 | eager |"),
    ("bench_eval", ["--images", "2", "--batch-size", "2", "--workers", "0"], "| devkit scoring |"),
    ("bench_train", ["--batch-size", "1", "--steps", "1", "--workers", "0", "--images", "2",
                        "--skip-torchvision"], "| ours, end to end"),
])
def test_benchmark_runs_and_prints_its_table(script, args, expected):
    result = subprocess.run([sys.executable, "-m", f"benchmarks.{script}", "--device", "cpu", *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert expected in result.stdout, result.stdout
