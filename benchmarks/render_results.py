"""Render the GPU suite's JSON files (benchmarks/results/*.json, written by `gpu_suite.sh STEP`) as Markdown,
and with --write put them between the `<!-- gpu-suite:begin -->` / `<!-- gpu-suite:end -->` markers of
benchmarks/RESULTS.md and docs/speed.md, so measured numbers drop in without hand-editing.

    python -m benchmarks.render_results [DIR ...] [--write]
"""
import argparse
import glob
import json
import os

BEGIN, END = "<!-- gpu-suite:begin -->", "<!-- gpu-suite:end -->"
ORDER = ["tests", "infer", "post", "train", "eval", "data", "shapes", "bccd", "accuracy"]


def render(records: list) -> str:
    if not records:
        return "No GPU suite results recorded yet (`bash benchmarks/gpu_suite.sh STEP` on a GPU machine)."
    parts = []
    for record in sorted(records, key=lambda r: ORDER.index(r["step"]) if r["step"] in ORDER else len(ORDER)):
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


def replace_block(path: str, block: str) -> bool:
    text = open(path).read()
    if BEGIN not in text or END not in text:
        return False
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(path, "w") as f:
        f.write(f"{head}{BEGIN}\n{block}{END}{tail}")
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("folders", nargs="*", default=[os.path.join(root, "results")],
                        help="folders of STEP.json files (default: benchmarks/results)")
    parser.add_argument("--write", action="store_true", help="write into RESULTS.md and docs/speed.md")
    parser.add_argument("--targets", nargs="+", default=[os.path.join(root, "RESULTS.md"),
                                                          os.path.join(root, "..", "docs", "speed.md")])
    args = parser.parse_args(argv)
    records = [json.load(open(p)) for folder in args.folders for p in sorted(glob.glob(os.path.join(folder, "*.json")))]
    records = [r for r in records if "step" in r]  # a step's JSON (a benchmark's own results file sits beside it)
    block = render(records)
    if args.write:
        for path in args.targets:
            print(f"{path}: {'updated' if replace_block(path, block) else 'no gpu-suite markers, left alone'}")
    else:
        print(block)


if __name__ == "__main__":
    main()
