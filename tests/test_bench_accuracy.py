"""benchmarks.bench_accuracy at a tiny budget: both models, both set-ups, scored on the same images."""
import json
import re

import cv2
import numpy as np
import pytest
from helpers import make_voc_folder

from benchmarks import bench_accuracy

TINY = ["--budget", "8", "--batch-size", "4", "--seeds", "0", "--evals", "2", "--workers", "0"]


def run(tmp_path, capsys, *extra):
    path = tmp_path / "acc.json"
    bench_accuracy.main(TINY + ["--json", str(path)] + list(extra))
    return json.loads(path.read_text()), capsys.readouterr().out


def check_rows(record, out, classes):
    rows = record["rows"]
    assert [(r["setup"], r["model"].split()[0]) for r in rows] == [("a+b", "ours"), ("a", "torchvision"),
                                                                    ("b", "torchvision")]
    ids = {tuple(r["final"]["image_ids"]) for r in rows}
    assert len(ids) == 1 and len(next(iter(ids))) > 0  # every model scored on the same test images
    for row in rows:
        assert row["images_seen"] == 8 and row["iterations"] == 2
        assert [p["images_seen"] for p in row["curve"]] == [4, 8]
        assert list(row["final"]["AP"]) == classes
        assert 0.0 <= row["final"]["mAP"] <= 1.0 and row["train_img_s"] > 0
    table = [line for line in out.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header == ["set-up", "model", "seeds", "images seen", "train min", "train img/s",
                      *(f"AP {c}" for c in classes), "mAP07", "ours / torchvision"]
    assert len(table) == 2 + 3
    assert all(len(line.strip("|").split("|")) == len(header) for line in table)
    assert table[3].endswith("x |") and table[4].endswith("x |")  # the ratio in both torchvision rows


def test_shapes_both_setups_same_images(tmp_path, capsys):
    record, out = run(tmp_path, capsys, "--shapes-images", "8", "4", "--curve", str(tmp_path / "curve.png"))
    check_rows(record, out, ["ellipse", "rectangle", "triangle", "star", "cross"])
    assert cv2.imread(str(tmp_path / "curve.png")) is not None
    assert "python train.py --backbone mobilenet_v3 --basenet none" in out


def test_voc_folder_and_combine(tmp_path, capsys):
    rng = np.random.default_rng(0)

    def objects():
        out = []
        for _ in range(int(rng.integers(1, 4))):
            x1, y1 = int(rng.integers(1, 80)), int(rng.integers(1, 60))
            out.append((["cell", "dot"][int(rng.integers(2))], x1, y1, x1 + int(rng.integers(10, 60)),
                        y1 + int(rng.integers(10, 50))))
        return out
    images = {f"im{i}": (objects(), 160, 120) for i in range(12)}
    make_voc_folder(tmp_path / "voc", images, {"trainval": [f"im{i}" for i in range(8)],
                                               "test": [f"im{i}" for i in range(8, 12)]})
    record, out = run(tmp_path, capsys, "--dataset", "VOC", "--dataset-root", str(tmp_path / "voc"), "--class-names",
                      "cell", "dot")
    check_rows(record, out, ["cell", "dot"])
    assert record["rows"][0]["final"]["image_ids"] == ["im10", "im11", "im8", "im9"]
    second = tmp_path / "second.json"
    second.write_text(json.dumps(dict(record, rows=[dict(r, seed=1) for r in record["rows"]])))
    bench_accuracy.main(["--combine", str(tmp_path / "acc.json"), str(second)])
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert len(table) == 5 and "| 0,1 |" in table[2]


def test_coco_format_folder(tmp_path, capsys):
    (tmp_path / "annotations").mkdir()
    images, annotations = {"train": [], "test": []}, {"train": [], "test": []}
    for i in range(10):
        split = "train" if i < 6 else "test"
        (tmp_path / split).mkdir(exist_ok=True)
        image = np.full((96, 128, 3), 90, np.uint8)
        cv2.rectangle(image, (10 + i, 12), (60 + i, 70), (0, 0, 255), -1)
        cv2.imwrite(str(tmp_path / split / f"{i}.jpg"), image)
        images[split].append({"id": i, "file_name": f"{i}.jpg", "width": 128, "height": 96})
        annotations[split].append({"id": i, "image_id": i, "category_id": 1, "bbox": [10 + i, 12, 50, 58],
                                   "area": 2900, "iscrowd": 0})
    for split in ("train", "test"):
        doc = {"images": images[split], "annotations": annotations[split],
               "categories": [{"id": 0, "name": "placeholder"}, {"id": 1, "name": "box"}]}
        (tmp_path / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    record, out = run(tmp_path, capsys, "--dataset", "COCO", "--dataset-root", str(tmp_path), "--sets", "train",
                      "--test-sets", "test")
    check_rows(record, out, ["box"])
    assert record["rows"][0]["final"]["image_ids"] == ["6", "7", "8", "9"]


def fails(capsys, argv, pattern):
    """bench_accuracy.main(argv) exits 2 with one line on stderr matching `pattern`."""
    with pytest.raises(SystemExit) as exit_info:
        bench_accuracy.main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in err and re.search(pattern, err), err


def test_bad_dataset_and_budget_are_one_line(tmp_path, capsys):
    fails(capsys, TINY + ["--dataset", "VOC", "--dataset-root", str(tmp_path / "missing"), "--class-names", "a"],
          "^error: .*not found")
    for budget in ("0", "-5"):
        fails(capsys, TINY[2:] + ["--budget", budget], f"^error: --budget {budget} --batch-size")


def test_ours_from_replays_the_same_batches(tmp_path, capsys):
    """--ours-from: torchvision (a) trained on the replayed stream of our loader scores exactly what it scores in
    lockstep with ours; ours's row is taken over, not retrained; another budget is refused in one line."""
    shapes = ["--shapes-images", "8", "4"]
    lockstep, _ = run(tmp_path, capsys, *shapes, "--setups", "a")
    ours_only, _ = run(tmp_path, capsys, *shapes, "--setups", "ours", "--curve", str(tmp_path / "ours.png"))
    assert cv2.imread(str(tmp_path / "ours.png")) is not None
    earlier = tmp_path / "ours.json"
    earlier.write_text(json.dumps(ours_only))
    replayed, out = run(tmp_path, capsys, *shapes, "--ours-from", str(earlier))
    assert [(r["setup"], r["model"].split()[0]) for r in replayed["rows"]] == [
        ("a+b", "ours"), ("a", "torchvision"), ("b", "torchvision")]
    assert replayed["rows"][0]["curve"] == ours_only["rows"][0]["curve"] == lockstep["rows"][0]["curve"]
    assert replayed["rows"][1]["curve"] == lockstep["rows"][1]["curve"]
    fails(capsys, TINY[2:] + ["--budget", "12"] + shapes + ["--ours-from", str(earlier)],
          "error: --ours-from .*budget 8 images.*budget 12 images")
    (tmp_path / "other.json").write_text(json.dumps({"rows": []}))
    fails(capsys, TINY + shapes + ["--ours-from", str(tmp_path / "other.json")],
          "error: --ours-from .*other.json: not a --json file of this benchmark")
    seeds = TINY.index("--seeds") + 1
    fails(capsys, TINY[:seeds] + ["1"] + TINY[seeds + 1:] + shapes + ["--ours-from", str(earlier)],
          "error: --ours-from: no row of ours for seed 1")


def test_combine_merges_ours_of_separate_setups(tmp_path, capsys):
    """Set-ups (a) and (b) run apart, each with ours's row: --combine shows ours once, as a+b, with both ratios."""
    ours = {"seed": 0, "model": "ours (mobilenet_v3)", "recipe": "python train.py", "images_seen": 8,
            "iterations": 2, "batch_size": 4, "train_s": 60.0, "train_img_s": 0.13,
            "final": {"mAP": 0.5, "AP": {"x": 0.5}, "image_ids": ["1"]}}
    tv = dict(ours, model="torchvision ssdlite", recipe="", final={"mAP": 0.25, "AP": {"x": 0.25}, "image_ids": ["1"]})
    paths = []
    for setup, row in (("a", tv), ("b", dict(tv, final={"mAP": 1.0, "AP": {"x": 1.0}, "image_ids": ["1"]}))):
        paths.append(tmp_path / f"{setup}.json")
        paths[-1].write_text(json.dumps({"header": "h", "rows": [dict(ours, setup=setup), dict(row, setup=setup)]}))
    bench_accuracy.main(["--combine", *map(str, paths)])
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| a")
             or line.startswith("| b")]
    assert [line.split("|")[1].strip() for line in table] == ["a+b", "a", "b"]
    assert table[1].endswith("| 2.00x |") and table[2].endswith("| 0.50x |")


def test_settings_ablation_goes_into_ours_config_and_recipe(tmp_path):
    args = bench_accuracy.parse_args(["--ablation", "small-priors", "--budget", "16000"])
    cfg = bench_accuracy.ours_config(args, 0, str(tmp_path))
    assert cfg.model.prior_layout["min_sizes"][0] == 32 and cfg.solver.max_iter == 1000
    assert bench_accuracy.train_py_command(cfg) == (
        "python train.py --backbone mobilenet_v3 --basenet none --min-sizes 32 86.4 140.8 195.2 249.6 304 "
        "--batch-size 16 --lr 0.025 --warmup-iters 100 --max-iter 1000 --lr-steps 760 900")
