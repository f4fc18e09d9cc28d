"""Render a suite's JSON files (benchmarks/results/gpu/*.json from `gpu_suite.sh STEP`, benchmarks/results/cpu/*.json
from `cpu_suite.sh STEP`) as Markdown, and with --write put them between the `<!-- SUITE-suite:begin -->` /
`<!-- SUITE-suite:end -->` markers of benchmarks/RESULTS.md and docs/speed.md, so measured numbers drop in without
hand-editing (tests/test_results_sources.py checks that the pages hold what their JSON renders).

    python -m benchmarks.render_results [--suite gpu|cpu] [DIR ...] [--write]
"""
import argparse
import glob
import json
import os

ROOT = os.path.dirname(os.path.abspath(__file__))
ORDERS = {"gpu": ["tests", "infer", "post", "train", "eval", "data", "shapes", "bccd", "accuracy"],
          "cpu": ["train-step", "infer", "runtimes", "lite", "post", "eval", "backbones", "cpu-check", "data",
                  "scale"]}
EMPTY = {"gpu": "No GPU suite results recorded yet (`bash benchmarks/gpu_suite.sh STEP` on a GPU machine).",
         "cpu": "No CPU suite results recorded yet (`bash benchmarks/cpu_suite.sh all` on a quiet machine)."}


def markers(suite: str = "gpu") -> tuple:
    return f"<!-- {suite}-suite:begin -->", f"<!-- {suite}-suite:end -->"


BEGIN, END = markers("gpu")


def suite_records(folder: str) -> list:
    """The step records of a folder (a benchmark's own results file may sit beside them)."""
    records = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(folder, "*.json")))]
    return [r for r in records if "step" in r]


def render(records: list, suite: str = "gpu") -> str:
    if not records:
        return EMPTY[suite]
    order = ORDERS[suite]
    parts = []
    for record in sorted(records, key=lambda r: order.index(r["step"]) if r["step"] in order else len(order)):
        wall = f", {record['wall_s']:.0f} s" if record.get("wall_s") is not None else ""
        parts.append(f"#### {record['step']}: {record['device']}, {record['date']}{wall}\n")
        parts += [f"`{command}`  " for command in record["commands"]]
        for table in record["tables"]:
            parts.append("")
            if table["title"]:
                parts.append(table["title"])
                parts.append("")
            parts.append("| " + " | ".join(table["header"]) + " |")
            parts.append("|" + "---|" * len(table["header"]))
            parts += ["| " + " | ".join(row) + " |" for row in table["rows"]]
        parts += [""] + [f"- {line}" for line in record.get("lines", [])] + [""]
    return "\n".join(parts).rstrip() + "\n"


def replace_block(path: str, block: str, suite: str = "gpu") -> bool:
    begin, end = markers(suite)
    text = open(path).read()
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(path, "w") as f:
        f.write(f"{head}{begin}\n{block}{end}{tail}")
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=sorted(ORDERS), default="gpu")
    parser.add_argument("folders", nargs="*", help="folders of STEP.json files (default: benchmarks/results/SUITE)")
    parser.add_argument("--write", action="store_true", help="write into RESULTS.md and docs/speed.md")
    parser.add_argument("--targets", nargs="+", default=[os.path.join(ROOT, "RESULTS.md"),
                                                          os.path.join(ROOT, "..", "docs", "speed.md")])
    args = parser.parse_args(argv)
    folders = args.folders or [os.path.join(ROOT, "results", args.suite)]
    block = render([r for folder in folders for r in suite_records(folder)], args.suite)
    if args.write:
        for path in args.targets:
            written = replace_block(path, block, args.suite)
            print(f"{path}: {'updated' if written else f'no {args.suite}-suite markers, left alone'}")
    else:
        print(block)


if __name__ == "__main__":
    main()
