"""README's results table against its records: every number a row shows is computed again from the files its
last column names under benchmarks/results/ (the mean over seeds of the final mAP, or the seeds' range, for the
accuracy records; a number in a suite step's tables or in a raw Markdown record), so a table edited by hand, or a
record replaced without the table, fails here. The rendered blocks and tables of docs/ and RESULTS.md are
re-rendered from their records and compared, and every speed, time or mAP their prose states must come from a
record."""
import glob
import itertools
import json
import os
import re
from collections import defaultdict

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
RESULTS = os.path.join(ROOT, "benchmarks", "results")


def results_rows(readme: str) -> list:
    """The cells of each data row of the table under README's `## Results` heading."""
    section = readme.split("\n## Results\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines[1:]]


def expand(pattern: str) -> list:
    """`a-{x,y}-{0,1}.json` -> the four names, as the shell's brace expansion."""
    parts = re.split(r"\{([^}]*)\}", pattern)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def derived_numbers(paths: list) -> set:
    """Every number the records support, as text at 1-4 decimals: an accuracy record's final mAPs and training
    minutes, each as the mean and range over the seeds of one set-up and model; every number of any other record."""
    values = []
    groups, minutes = defaultdict(list), defaultdict(list)
    for path in paths:
        record = json.load(open(path)) if path.endswith(".json") else None
        if record is not None and "tables" in record:  # a suite step's record: every number of its tables
            cells = [cell for table in record["tables"] for row in table["rows"] for cell in row]
            values += [float(v) for cell in cells for v in re.findall(r"\d+\.\d+", cell)]
        elif record is not None and "rows" in record:
            for row in record["rows"]:
                groups[(row["setup"], row["model"])].append(row["curve"][-1]["mAP"])
                if "train_s" in row:
                    minutes[(row["setup"], row["model"])].append(row["train_s"] / 60)
        else:
            values += [float(v) for v in re.findall(r"\d+\.\d+", open(path).read())]
    for maps in [*groups.values(), *minutes.values()]:
        values += [sum(maps) / len(maps), min(maps), max(maps)]
    return {f"{v:.{d}f}" for v in values for d in range(1, 5)}


def test_range_expansion_and_numbers_of_a_record(tmp_path):
    assert expand("x-{a,b}-seed{0,1}.json") == ["x-a-seed0.json", "x-a-seed1.json", "x-b-seed0.json",
                                                "x-b-seed1.json"]
    record = {"rows": [{"setup": "ours", "model": "m", "curve": [{"mAP": 0.1}, {"mAP": 0.7004}]},
                       {"setup": "ours", "model": "m", "curve": [{"mAP": 0.2}, {"mAP": 0.8}]}]}
    path = tmp_path / "r.bench.json"
    path.write_text(json.dumps(record))
    numbers = derived_numbers([str(path)])
    assert {"0.750", "0.700", "0.800"} <= numbers and "0.1" not in numbers  # final mAPs only, mean and range


@pytest.mark.parametrize("page", ["README.md"])
def test_every_number_of_the_results_table_comes_from_its_records(page):
    rows = results_rows(open(os.path.join(ROOT, page)).read())
    assert len(rows) >= 5
    for what, _device, number, record in rows:
        names = re.findall(r"`([^`]+)`", record)
        if not names:  # published elsewhere: the row says whose number it is
            assert number.startswith("paper:"), f"{page}: '{what}' has no record under benchmarks/results/"
            continue
        paths = [os.path.join(RESULTS, name) for pattern in names for name in expand(pattern)]
        missing = [p for p in paths if not glob.glob(p)]
        assert not missing, f"{page}: '{what}' names records that do not exist: {missing}"
        supported = derived_numbers(paths)
        shown = re.findall(r"\d+\.\d+", number)
        assert shown, f"{page}: '{what}' shows no number"
        unsupported = [v for v in shown if v not in supported]
        assert not unsupported, f"{page}: '{what}' shows {unsupported}, which its records {names} do not give"


MARKER = re.compile(r"<!-- rendered by bench_accuracy --combine (.+?) -->\n((?:\|.*\n)+)")
PAGES = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))) + [os.path.join(ROOT, "benchmarks", "RESULTS.md")]


def test_every_rendered_accuracy_table_is_what_its_records_render():
    """A table marked `rendered by bench_accuracy --combine FILES` equals, line for line, the table that command
    prints from those records."""
    from benchmarks.bench_accuracy import merge_ours, table
    found = 0
    for page in PAGES:
        for files, shown in MARKER.findall(open(page).read()):
            paths = [os.path.normpath(os.path.join(os.path.dirname(page), f)) for f in files.split()]
            rows = merge_ours([row for path in paths for row in json.load(open(path))["rows"]])
            assert shown.strip() == table(rows).strip(), f"{os.path.relpath(page, ROOT)}: the table after the " \
                f"marker for {files} differs from what its records render"
            found += 1
    assert found >= 4


@pytest.mark.parametrize("suite", ["cpu", "gpu"])
def test_every_suite_block_is_what_its_records_render(suite):
    """The block between a page's `<!-- SUITE-suite:begin -->` markers is what render_results renders from
    benchmarks/results/SUITE/*.json."""
    from benchmarks.render_results import markers, render, suite_records
    begin, end = markers(suite)
    expected = render(suite_records(os.path.join(RESULTS, suite)), suite)
    found = 0
    for page in PAGES:
        text = open(page).read()
        if begin in text:
            shown = text.split(begin, 1)[1].split(end, 1)[0]
            assert shown.strip() == expected.strip(), f"{os.path.relpath(page, ROOT)}: the {suite}-suite block " \
                f"differs from what benchmarks/results/{suite}/ renders (python -m benchmarks.render_results " \
                f"--suite {suite} --write)"
            found += 1
    assert found >= 1


def test_every_measured_number_in_readmes_prose_is_one_of_its_results_table():
    """A number README states outside its results table (and outside code blocks) is one the table shows, so it
    has the table's record as its source; versions (3.10+) are not measurements."""
    readme = open(os.path.join(ROOT, "README.md")).read()
    table = " ".join(" ".join(row) for row in results_rows(readme))
    shown = set(re.findall(r"\d+\.\d+", table))
    prose = re.sub(r"```.*?```", "", readme, flags=re.S).split("\n## Results\n", 1)
    prose = prose[0] + "\n## " + prose[1].split("\n## ", 1)[1]
    found = [n for n in re.findall(r"(?<![\w.])\d+\.\d+(?![\d.+])", prose) if n not in shown]
    assert not found, f"README.md states {found} outside its results table; put them in the table with their record"


MEASURED = re.compile(r"(?<![\w.])(\d+\.\d+)(x| img/s| s\b| ms\b| mAP| AP\b| minutes)")
SUITE_BLOCK = re.compile(r"<!-- (cpu|gpu)-suite:begin -->.*?<!-- (cpu|gpu)-suite:end -->", re.S)


def record_numbers() -> set:
    """Every decimal any file under benchmarks/results/ holds, and the final mAPs' means over seeds."""
    paths = [p for p in glob.glob(os.path.join(RESULTS, "**", "*"), recursive=True) if os.path.isfile(p)]
    numbers = derived_numbers([p for p in paths if p.endswith(".bench.json")])
    for path in paths:
        numbers |= {f"{float(v):.{d}f}" for v in re.findall(r"\d+\.\d+", open(path, errors="ignore").read())
                    for d in range(1, 5)}
    return numbers


def test_every_measured_number_of_the_docs_has_a_record():
    """A speed, time or mAP that docs/ or RESULTS.md states in prose (outside code blocks and the rendered blocks
    and tables, which the tests above check) is a number of a record, of a rendered table of its page, or the
    ratio of two numbers of its paragraph; tables of numbers published elsewhere say so in their header."""
    from_records = record_numbers()
    missing = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", open(page).read(), flags=re.S)
        rendered = "".join(m.group(0) for m in SUITE_BLOCK.finditer(text)) + "".join(s for _, s in MARKER.findall(text))
        shown = {v for number in re.findall(r"\d+\.\d+", rendered) for v in rounded(number)}
        prose = SUITE_BLOCK.sub("", MARKER.sub("", text))
        prose = re.sub(r"^(\|.*published.*\n)(\|.*\n)+", "", prose, flags=re.M)  # others' published numbers
        for paragraph in prose.split("\n\n"):
            operands = [float(v) for v in re.findall(r"(?<![\w.])\d+\.\d+", paragraph)]
            for number, unit in MEASURED.findall(paragraph):
                digits = len(number.split(".")[1])
                if number in from_records or number in shown:
                    continue
                if unit == "x" and any(b and f"{a / b:.{digits}f}" == number for a in operands for b in operands):
                    continue
                missing.append(f"{os.path.relpath(page, ROOT)}: {number}{unit}")
    assert not missing, f"numbers without a record under benchmarks/results/: {missing}"


def rounded(number: str) -> set:
    return {f"{float(number):.{d}f}" for d in range(1, 5)}
