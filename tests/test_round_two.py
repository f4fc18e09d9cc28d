"""Numbers you can trust, round two: results computed on what was asked, interruptions that stay finishable, output
paths checked before any work, messages that name the real cause. Every test writes its own data."""
import ast
import json
import logging
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
from helpers import make_voc_folder

import detect
import eval as eval_script
import train
from data import COCOSource, DatasetError, VOCSource, build_source
from data.check import main as check_main
from engine import score_voc
from scripts.export_onnx import main as export_main
from utils.voc_eval import to_devkit, write_results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--basenet", "none", "--batch-size", "2", "--workers", "0", "--no-batch-norm", "--eval-every", "0",
        "--no-tensorboard", "--checkpoint-every", "0", "--log-every", "1", "--warmup-iters", "0", "--max-iter", "1"]
SHAPES = ["--dataset", "shapes", "--shapes-train-images", "4", "--shapes-test-images", "2", "--batch-size", "2",
          "--workers", "0", "--eval-every", "0", "--no-tensorboard", "--checkpoint-every", "0", "--max-iter", "1",
          "--warmup-iters", "0", "--eval-limit", "1"]


def cells_folder(folder, count=6, sets=None):
    images = {f"c{i}": ([("cell", 3 + i, 4, 30 + i, 28), ("dot", 35, 20, 50, 40)], 64, 48) for i in range(count)}
    make_voc_folder(folder, images, sets=sets or {"train": list(images)[:2], "test": list(images)[2:]})
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 1-iteration VOC-folder run whose checkpoint stores --eval-limit 1 (validation subset) and no final eval."""
    base = tmp_path_factory.mktemp("trained")
    root = cells_folder(base / "data")
    run = base / "run"
    assert train.main(["--dataset", "VOC", "--dataset-root", str(root), "--sets", "train", "--test-sets", "test",
                       "--labels", "cell", "dot", "--eval-limit", "1", "--no-final-eval", "--output", str(run)]
                      + FAST) == 0
    return root, run


# --- numbers computed on what was asked ----------------------------------------------------------------------------

def test_standalone_eval_scores_the_whole_set_unless_limited_on_its_command_line(trained, capsys):
    root, run = trained
    assert eval_script.main(["--weights", str(run / "final.pth"), "--workers", "0", "--output",
                             str(run / "e1")]) == 0
    metrics = json.loads((run / "e1" / "metrics.json").read_text())
    assert metrics["images"] == 4 and metrics["images_in_set"] == 4
    assert "4 images scored" in capsys.readouterr().out
    assert eval_script.main(["--weights", str(run / "final.pth"), "--workers", "0", "--eval-limit", "3",
                             "--output", str(run / "e2")]) == 0
    metrics = json.loads((run / "e2" / "metrics.json").read_text())
    assert metrics["images"] == 3 and metrics["images_in_set"] == 4
    assert "3 of the 4 images scored" in capsys.readouterr().out


def test_filename_naming_another_image_reads_the_ids_image(tmp_path, capsys):
    root = cells_folder(tmp_path / "d", count=2, sets={"trainval": ["c0", "c1"]})
    xml = root / "Annotations" / "c0.xml"
    xml.write_text(xml.read_text().replace("<filename>c0.jpg</filename>", "<filename>c1.jpg</filename>"))
    source = VOCSource(str(root), ["trainval"], ["cell", "dot"])
    assert source.image_path(0).endswith("c0.jpg") and source.image_path(1).endswith("c1.jpg")
    assert source.problems.counts["XMLs whose <filename> names another image, read as JPEGImages/<id>"] == 1
    assert check_main(["--dataset", "VOC", "--dataset-root", str(root), "--sets", "trainval", "--labels", "cell",
                       "dot", "--no-decode"]) == 1
    assert f"{xml}: <filename> c1.jpg is another image" in capsys.readouterr().out


def test_size_zero_is_read_from_the_image_alike_for_train_eval_and_check(tmp_path, capsys):
    root = cells_folder(tmp_path / "d", count=2, sets={"trainval": ["c0", "c1"]})
    xml = root / "Annotations" / "c0.xml"
    text = re.sub(r"<width>\d+</width>", "<width>0</width>", xml.read_text())
    text = re.sub(r"<height>\d+</height>", "<height>0</height>", text)
    # a second cell that lies wholly right of the real 64-pixel-wide image, and one half outside it
    text = text.replace("</annotation>", "<object><name>cell</name><bndbox><xmin>70</xmin><ymin>5</ymin><xmax>90"
                        "</xmax><ymax>20</ymax></bndbox></object><object><name>dot</name><bndbox><xmin>50</xmin>"
                        "<ymin>5</ymin><xmax>80</xmax><ymax>20</ymax></bndbox></object></annotation>")
    xml.write_text(text)
    for skip_empty in (False, True):  # evaluation and training read the same objects
        source = VOCSource(str(root), ["trainval"], ["cell", "dot"], skip_empty=skip_empty)
        boxes, labels, _ = source.annotation(0)
        assert len(labels) == 3 and boxes[:, 2].max() == 64
        assert source.problems.counts["boxes wholly outside the image, dropped"] == 1
        assert source.problems.counts["boxes past the image edge, clipped"] == 1
    # the ground truth fed back as detections scores exactly 1
    results = {i: dict(zip(("boxes", "labels"), source.annotation(i)[:2])) for i in range(len(source))}
    for det in results.values():
        det["scores"] = np.ones(len(det["labels"]))
    assert score_voc(source, results)["mAP"] == pytest.approx(1.0)
    assert check_main(["--dataset", "VOC", "--dataset-root", str(root), "--sets", "trainval", "--labels", "cell",
                       "dot"]) == 1
    out = capsys.readouterr().out
    assert "1 XMLs without <size> (or 0): size read from the image" in out
    assert f"{xml}: 1 box(es) wholly outside the 64x48 image, dropped" in out


def test_an_id_listed_twice_is_read_once(tmp_path):
    root = cells_folder(tmp_path / "d", count=3, sets={"test": ["c0", "c1", "c0", "c2"]})
    source = VOCSource(str(root), ["test"], ["cell", "dot"])
    assert len(source) == 3 and source.problems.counts["ids listed more than once, read once"] == 1


def test_from_results_counts_what_is_outside_the_set(tmp_path, capsys):
    root = cells_folder(tmp_path / "d")
    source = VOCSource(str(root), ["test"], ["cell", "dot"])
    columns = {}
    for c, name in enumerate(["cell", "dot"]):
        ids, scores, boxes = [], [], []
        for i in range(len(source)):
            b, labels, _ = source.annotation(i)
            ids += [source.image_id(i)] * int((labels == c).sum())
            boxes.append(to_devkit(b[labels == c]))
        scores = np.ones(len(ids))
        columns[name] = (np.array(ids + ["elsewhere"]), np.append(scores, 1.0),
                         np.concatenate(boxes + [np.array([[1.0, 1, 9, 9]])]))
    write_results(str(tmp_path / "res"), columns, ["cell", "dot"])
    flags = ["--dataset", "VOC", "--dataset-root", str(root), "--test-sets", "test", "--labels", "cell", "dot"]
    assert eval_script.main(flags + ["--from-results", str(tmp_path / "res")]) == 0
    assert "2 detection(s) on 1 image(s) not in VOC left out, first: elsewhere" in capsys.readouterr().err
    metrics = json.loads((tmp_path / "res" / "metrics.json").read_text())
    assert metrics["mAP"] == pytest.approx(1.0) and metrics["detections_outside_set"] == 2
    # results of another set altogether: exit 2 naming the set and ids found
    other = {name: (np.array(["x1", "x2"]), np.ones(2), np.array([[1.0, 1, 9, 9]] * 2)) for name in ["cell", "dot"]}
    write_results(str(tmp_path / "other"), other, ["cell", "dot"])
    capsys.readouterr()
    assert eval_script.main(flags + ["--from-results", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert "none of its 4 detections" in err and "--test-sets test" in err and "x1, x2" in err


def write_coco(root, name, images, categories, annotations):
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / name).mkdir(exist_ok=True)
    for image in images:
        cv2.imwrite(str(root / name / image["file_name"]), np.full((image["height"], image["width"], 3), 99, np.uint8))
    doc = {"images": images, "categories": categories, "annotations": annotations}
    (root / "annotations" / f"instances_{name}.json").write_text(json.dumps(doc))


def test_coco_test_set_without_ground_truth_exits_2(tmp_path, capsys):
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 48} for i in (1, 2)]
    cats = [{"id": 1, "name": "cell"}]
    write_coco(tmp_path, "train", images, cats, [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 20],
                                                  "area": 400, "iscrowd": 0}])
    write_coco(tmp_path, "test", images, cats, [])
    run = tmp_path / "run"
    code = train.main(["--dataset", "COCO", "--dataset-root", str(tmp_path), "--sets", "train", "--test-sets",
                       "test", "--output", str(run)] + FAST)
    err = capsys.readouterr().err
    assert code == 2 and "nothing to score" in err and "AP: -1" not in err
    assert not (run / "eval" / "metrics.json").exists()


def test_voc_training_skips_images_without_objects_of_labels_as_the_checker_says(tmp_path, capsys):
    images = {"a": ([("cell", 3, 4, 30, 28)], 64, 48), "b": ([("other", 3, 4, 30, 28)], 64, 48),
              "c": ([("cell", 5, 6, 20, 30)], 64, 48)}
    make_voc_folder(tmp_path, images, sets={"trainval": ["a", "b", "c"], "test": ["a", "b", "c"]})
    flags = ["--dataset", "VOC", "--dataset-root", str(tmp_path), "--labels", "cell"]
    train_source = build_source(train.resolve(dict(dataset="VOC", dataset_root=str(tmp_path), labels=["cell"],
                                                   sets=["trainval"], test_sets=["test"])), train=True)
    assert len(train_source) == 2
    assert train_source.problems.counts["images without any object of --labels, skipped for training"] == 1
    check_main(flags + ["--sets", "trainval"])
    out = capsys.readouterr().out
    assert "images: 2 readable (0 without objects)" in out and "1 images without any object of --labels" in out
    check_main(flags + ["--test-sets", "test", "--split", "test"])
    assert "images: 3 readable (1 without objects)" in capsys.readouterr().out


# --- interruptions and resumption ----------------------------------------------------------------------------------

def test_resume_auto_continues_the_newest_unfinished_run_not_the_newest_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, files in {"old-unfinished": ["ckpt_0000100.pth"],
                        "new-unfinished": ["ckpt_0000050.pth"],
                        "finished": ["ckpt_0000200.pth", "final.pth", "eval/metrics.json"]}.items():
        for file in files:
            path = tmp_path / "runs" / name / file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
    os.utime(tmp_path / "runs" / "old-unfinished" / "ckpt_0000100.pth", (1, 1))
    (tmp_path / "runs" / "finished" / "eval" / "later.txt").write_text("eval.py wrote here last")
    assert train.find_resume("auto") == os.path.join("runs", "new-unfinished", "ckpt_0000050.pth")


def test_sigterm_during_the_final_evaluation_leaves_a_run_that_resume_finishes(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    real = train.Trainer.evaluate_test_set

    def terminated(self, output=None):
        raise train.Terminated()

    monkeypatch.setattr(train.Trainer, "evaluate_test_set", terminated)
    assert train.main(SHAPES + ["--output", str(run)]) == 143
    assert not (run / "eval" / "metrics.json").exists()
    monkeypatch.setattr(train.Trainer, "evaluate_test_set", real)
    capsys.readouterr()
    assert train.main(["--resume", str(run)]) == 0
    assert (run / "eval" / "metrics.json").exists() and "| mAP" in capsys.readouterr().out
    assert train.main(["--resume", str(run)]) == 2  # now finished: the one-line refusal
    assert "already reached iteration 1" in capsys.readouterr().err


def test_ctrl_c_during_eval_is_one_line_and_writes_nothing(trained, monkeypatch, capsys):
    _, run = trained

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(eval_script, "evaluate", interrupted)
    assert eval_script.main(["--weights", str(run / "final.pth"), "--output", str(run / "ctrl-c")]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("interrupted:") and "Traceback" not in err
    assert not (run / "ctrl-c" / "metrics.json").exists()


# --- output paths --------------------------------------------------------------------------------------------------

def test_unusable_output_paths_are_one_line_before_any_work(trained, tmp_path, capsys):
    _, run = trained
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    under_file = str(a_file / "sub")
    assert train.main(SHAPES + ["--output", str(a_file)]) == 2
    assert f"--output {a_file}: is a file, not a folder" in capsys.readouterr().err
    # a run that stops on bad data leaves no empty run folder behind
    assert train.main(["--dataset", "VOC", "--dataset-root", str(tmp_path / "missing"), "--output",
                       str(tmp_path / "runs" / "x")] + FAST) == 2
    assert not (tmp_path / "runs").exists()
    assert eval_script.main(["--weights", str(run / "final.pth"), "--output", under_file]) == 2
    assert f"--output {under_file}: a part of it is a file" in capsys.readouterr().err
    assert export_main(["--weights", str(run / "final.pth"), "--output", str(tmp_path)]) == 2
    assert "is a folder; give a file name" in capsys.readouterr().err
    image = tmp_path / "in.jpg"
    cv2.imwrite(str(image), np.full((48, 64, 3), 80, np.uint8))
    assert detect.main(["--weights", str(run / "final.pth"), str(image), "--output", under_file]) == 2
    captured = capsys.readouterr()
    assert "->" not in captured.out and "a part of it is a file" in captured.err
    # --json into a folder that does not exist yet: created, written, and said
    target = tmp_path / "new" / "dets.json"
    assert detect.main(["--weights", str(run / "final.pth"), str(image), "--output", str(tmp_path / "out"),
                        "--json", str(target)]) == 0
    assert json.loads(target.read_text()) and f"{target}" in capsys.readouterr().out


def test_detect_keeps_both_inputs_with_one_name_and_refuses_an_empty_folder(trained, tmp_path, capsys):
    _, run = trained
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / sub / "x.jpg"), np.full((48, 64, 3), 80, np.uint8))
    out = tmp_path / "out"
    assert detect.main(["--weights", str(run / "final.pth"), str(tmp_path / "a"), str(tmp_path / "b"),
                        "--output", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["x.jpg", "x_2.jpg"]
    assert "1 written as NAME_2" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert detect.main(["--weights", str(run / "final.pth"), str(tmp_path / "empty")]) == 2
    assert "no images in this folder" in capsys.readouterr().err


# --- messages that mislead -----------------------------------------------------------------------------------------

def test_all_images_missing_names_that_cause(tmp_path):
    root = cells_folder(tmp_path / "d", count=3, sets={"test": ["c0", "c1", "c2"]})
    for name in os.listdir(root / "JPEGImages"):
        os.remove(root / "JPEGImages" / name)
    xml = root / "Annotations" / "c0.xml"
    xml.write_text(xml.read_text().replace("<xmax>30</xmax>", "<xmax>99</xmax>"))  # one box problem as well
    with pytest.raises(DatasetError, match=r"\(3 annotated images not found, skipped, first: "):
        VOCSource(str(root), ["test"], ["cell", "dot"])


def test_half_pixel_excess_is_clamped_quietly_real_excess_reported(tmp_path, capsys):
    root = cells_folder(tmp_path / "d", count=2, sets={"trainval": ["c0", "c1"]})
    xml = root / "Annotations" / "c0.xml"
    xml.write_text(xml.read_text().replace("<xmax>50</xmax>", "<xmax>64.5</xmax>"))
    flags = ["--dataset", "VOC", "--dataset-root", str(root), "--sets", "trainval", "--labels", "cell", "dot"]
    assert check_main(flags) == 0
    assert "1 boxes past the image edge by half a pixel or less (rounding), clamped" in capsys.readouterr().out
    source = VOCSource(str(root), ["trainval"], ["cell", "dot"])
    assert source.annotation(0)[0][:, 2].max() == 64
    xml.write_text(xml.read_text().replace("<xmax>64.5</xmax>", "<xmax>67</xmax>"))
    assert check_main(flags) == 1
    assert "box(es) outside the 64x48 image, clipped" in capsys.readouterr().out


def test_a_truncated_jpeg_is_named_by_the_checker(tmp_path, capsys):
    root = cells_folder(tmp_path / "d", count=2, sets={"trainval": ["c0", "c1"]})
    path = root / "JPEGImages" / "c1.jpg"
    path.write_bytes(path.read_bytes()[:-200])
    check_main(["--dataset", "VOC", "--dataset-root", str(root), "--sets", "trainval", "--labels", "cell", "dot"])
    assert str(path) in capsys.readouterr().out


def test_coco_categories_sharing_a_name_are_named_by_id(tmp_path, caplog):
    images = [{"id": 1, "file_name": "1.jpg", "width": 64, "height": 48}]
    cats = [{"id": 0, "name": "pothole"}, {"id": 1, "name": "pothole"}]
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 20], "area": 400, "iscrowd": 0}]
    write_coco(tmp_path, "train", images, cats, anns)
    with caplog.at_level(logging.WARNING):
        source = COCOSource(str(tmp_path), ["train"])
    assert source.class_names == ["pothole"] and source.category_ids == [1]
    assert "left out: pothole (id 0)" in source.notices[0]
    chosen = COCOSource(str(tmp_path), ["train"], labels=["pothole"])
    assert chosen.category_ids == [1] and len(chosen.table.labels) == 1


def advice_commands() -> dict:
    """Every `python -m MODULE` / `python FILE.py` in a string the program can print (docstrings aside)."""
    pattern = re.compile(r"python (-m [\w.]+|[\w/]+\.py)")
    found = {}
    for top in ("config.py", "train.py", "eval.py", "detect.py", "data", "engine", "layers", "models", "utils",
                "scripts"):
        path = os.path.join(ROOT, top)
        files = [path] if top.endswith(".py") else \
            [os.path.join(path, f) for f in os.listdir(path) if f.endswith(".py")]
        for file in files:
            tree = ast.parse(open(file).read())
            docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                          if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                    for command in pattern.findall(node.value):
                        found.setdefault(command, os.path.relpath(file, ROOT))
    return found


def test_every_command_the_program_advises_runs_from_the_repo_root():
    commands = advice_commands()
    assert "-m scripts.convert_vgg16" in commands and "-m data.check" in commands
    for command, where in commands.items():
        if command == "-m visdom.server":  # a server: its module must exist, it is not started here
            continue
        result = subprocess.run([sys.executable, *command.split(), "--help"], cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, f"{where} advises `python {command}`: {result.stderr[-500:]}"


def test_a_list_flag_given_twice_is_a_note_and_a_missing_devkit_set_lists_the_sets(tmp_path, capsys):
    train.parse_args(["--labels", "a", "--labels", "b", "c"])
    assert "note: --labels given 2 times: the last one is used" in capsys.readouterr().err
    root = tmp_path / "VOCdevkit"
    cells_folder(root / "VOC2007", sets={"trainval": ["c0"], "test": ["c1"]})
    with pytest.raises(DatasetError, match=r"image set '2007:tset' not found; the sets there: 2007:test 2007:trainval"):
        VOCSource(str(root), ["2007:tset"], ["cell"])
