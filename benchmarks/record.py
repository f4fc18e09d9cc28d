"""Turn a benchmark step's raw output into JSON: the device, the date, the commands and every Markdown table it
printed (with the line above each as its title), plus the AP tables and mAP lines of training runs.

    python -m benchmarks.record --step infer --raw OUT/infer.txt --json OUT/infer.json --command "..." [--wall-s N]
"""
import argparse
import datetime
import json
import re

import torch

from benchmarks.common import device_name


def parse_tables(text: str) -> list:
    """Every block of consecutive '|' lines -> {"title", "header", "rows"} (the separator row dropped)."""
    tables, block, title, previous = [], [], "", ""
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            if not block:
                title = previous
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
            continue
        if block:
            rows = [row for row in block if not all(re.fullmatch(r":?-+:?", cell) for cell in row)]
            tables.append({"title": title, "header": rows[0], "rows": rows[1:]})
            block = []
        if line.strip():
            previous = line.strip()
    return tables


def build_record(text: str, step: str, commands: list, wall_s: float = None) -> dict:
    """A benchmark's printed output -> the record: device, date, commands, its tables and its summary lines."""
    return {"step": step, "device": device_name(), "date": datetime.date.today().isoformat(),
            "torch": torch.__version__, "commands": commands, "wall_s": wall_s, "tables": parse_tables(text),
            "lines": [line for line in text.splitlines()
                      if re.match(r"(speed-up|devkit|validation|iteration \d+: validation|evaluation of|"
                                  r"worker growth|full COCO)", line.split(" INFO ")[-1])]}


def write_record(path: str, text: str, step: str, commands: list, wall_s: float = None) -> dict:
    """`build_record` of a benchmark's printed output, written to `path` as JSON, with a line saying so."""
    record = build_record(text, step, commands, wall_s)
    with open(path, "w") as f:
        json.dump(record, f, indent=1)
    print(f"{path}: {len(record['tables'])} table(s)")
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--step", required=True, help="the suite step's name")
    parser.add_argument("--raw", required=True, help="the step's raw output")
    parser.add_argument("--json", required=True, help="the JSON file to write")
    parser.add_argument("--command", action="append", default=[], help="a command the step ran (repeatable)")
    parser.add_argument("--wall-s", type=float, help="the step's wall time in seconds")
    args = parser.parse_args(argv)
    write_record(args.json, open(args.raw).read(), args.step, args.command, args.wall_s)


if __name__ == "__main__":
    main()
