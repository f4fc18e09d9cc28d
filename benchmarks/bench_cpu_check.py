"""The README's first command on a machine without a GPU (`python train.py`: the pretrained EfficientNet-Lite0
detector fine-tuned on the shapes set; `--extra --backbone vgg16`: the SSD300 pipeline check), timed at each
precision, with the mAP it ends with: every run is train.py itself, in a process of its own, from start-up to its
closing lines.

    python -m benchmarks.bench_cpu_check [--amp off auto] [--json FILE]

Prints one Markdown row per precision: wall minutes, the training rate train.py logs last, the final mAP, the
precision line it printed, and the speed-up over the first precision; `--json` writes the table as a record
(benchmarks/record.py's format).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from benchmarks.record import write_record
from utils.logger import last_training_rate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_check(amp: str, folder: str, extra: list) -> dict:
    """train.py with no flag but --amp (and an output folder) -> wall seconds, last img/s, its precision line."""
    output = os.path.join(folder, f"run-{amp}")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "train.py", "--amp", amp, "--output", output, "--no-tensorboard",
                             *extra], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"train.py --amp {amp} exited {result.returncode}: {result.stderr[-2000:]}")
    precision = re.search(r"precision: (.*)", result.stderr)
    with open(os.path.join(output, "eval", "metrics.json")) as f:
        final_map = json.load(f)["mAP"]
    return {"seconds": seconds, "img_s": last_training_rate(output), "mAP": final_map,
            "precision": precision.group(1) if precision else "?"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--amp", nargs="+", default=["off", "auto"], choices=["auto", "off", "bf16"])
    parser.add_argument("--json", help="write the table as a record (benchmarks/record.py's format)")
    parser.add_argument("--examples", help="keep the last run's picture of its detections (eval/examples.jpg) here")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                        help="more train.py flags (the tests: a schedule of seconds instead of the check)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        results = {amp: run_check(amp, folder, args.extra) for amp in args.amp}
        if args.examples:
            shutil.copy(os.path.join(folder, f"run-{args.amp[-1]}", "eval", "examples.jpg"), args.examples)
    first = results[args.amp[0]]["seconds"]
    command = " ".join(["python train.py", *args.extra])
    lines = [f"The main command on a CPU (`{command}`), {os.cpu_count()} cores, one run per precision",
             "| --amp | wall minutes | training img/s (last log) | mAP | speed-up | precision line |",
             "|---|---|---|---|---|---|"]
    for amp, r in results.items():
        lines.append(f"| {amp} | {r['seconds'] / 60:.1f} | {r['img_s']:.2f} | {r['mAP']:.3f} | "
                     f"{first / r['seconds']:.2f}x | {r['precision']} |")
    text = "\n".join(lines)
    print("\n" + text)
    if args.json:
        write_record(args.json, text, "cpu-check",
                     ["python -m benchmarks.bench_cpu_check " + " ".join(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    main()
