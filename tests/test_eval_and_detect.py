"""eval.py and detect.py score and draw what was asked: the whole test set unless limited on their command line,
every image once, results files of other sets counted, no ground truth refused, Ctrl-C writing nothing, detect.py's
inputs kept apart; detections clipped before scoring as Caffe does."""
import json
import os

import cv2
import numpy as np
import pytest
import torch
from helpers import FAST, cells_folder, make_voc_folder, raccoon_folder, write_coco

import detect
import eval as eval_script
import train
from config_resolve import config_for
from data import DatasetError, SSDDataset, VOCSource, build_source
from data.transforms import ResizeTransform
from engine import evaluate, write_metrics
from layers import BoxCoder, decode, postprocess
from models import VGGSSD
from utils.voc_eval import evaluate_detections, to_devkit, write_results


def test_standalone_eval_scores_the_whole_set_unless_limited_on_its_command_line(voc_run, capsys):
    root, run = voc_run
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


def test_eval_caps_its_workers_to_the_cores(voc_run, capsys):
    root, run = voc_run
    assert eval_script.main(["--weights", str(run / "final.pth"), "--workers", "64", "--eval-limit", "1",
                             "--output", str(run / "e3")]) == 0
    assert "--workers 64 capped to" in capsys.readouterr().err


def test_evaluation_scores_every_image_once(tmp_path, capsys):
    images = {f"t{i}": ([("cat", 5, 5, 40, 40)], 64, 48) for i in range(4)}
    make_voc_folder(tmp_path, images, sets={"test": list(images)})
    (tmp_path / "JPEGImages" / "t1.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    cfg = config_for("VOC", dataset_root=str(tmp_path), test_sets=["test"], class_names=["cat"], batch_norm=False,
                     batch_size=2, workers=0, backbone="vgg16")
    source = build_source(cfg, train=False)
    dataset = SSDDataset(source, ResizeTransform(300), substitute=False)
    image, target, index, size = dataset[1]
    assert size == (0, 0) and index == 1 and target.shape == (0, 5)
    model = VGGSSD.from_config(cfg).eval()
    with pytest.raises(DatasetError, match="t1.jpg: cannot be decoded.*--unreadable miss"):
        evaluate(model, cfg, source, torch.device("cpu"))
    metrics = evaluate(model, cfg.replace(unreadable="miss"), source, torch.device("cpu"),
                       output=str(tmp_path / "out"))
    assert metrics["unreadable"] == 1
    ids = [line.split()[0] for line in open(tmp_path / "out" / "comp4_det_test_cat.txt")]
    assert "t1" not in ids and set(ids) <= {"t0", "t2", "t3"}


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
    flags = ["--dataset", "VOC", "--dataset-root", str(root), "--test-sets", "test", "--class-names", "cell", "dot"]
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


def test_evaluation_without_ground_truth_fails(tmp_path, capsys):
    root = raccoon_folder(tmp_path / "data")
    run = tmp_path / "run"
    assert train.main(["--dataset", "VOC", "--dataset-root", str(root), "--sets", "train", "--test-sets", "test",
                       "--class-names", "raccoon", "--no-final-eval", "--output", str(run)] + FAST) == 0
    other = tmp_path / "other"
    make_voc_folder(other, {"x": ([("dog", 3, 3, 20, 20)], 64, 48)}, sets={"test": ["x"]})
    capsys.readouterr()
    code = eval_script.main(["--weights", str(run / "final.pth"), "--dataset-root", str(other), "--workers", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "hold no object of the classes ['raccoon']" in err and "nothing to score" in err


def test_metrics_json_is_valid_json_with_a_class_without_ground_truth(tmp_path):
    metrics = evaluate_detections({}, {"x": (np.array([[1, 1, 9, 9]]), np.array([0]), np.array([False]))},
                                  ["cat", "dog"])
    assert np.isnan(metrics["AP"]["dog"])
    write_metrics(metrics, str(tmp_path))
    text = (tmp_path / "metrics.json").read_text()
    saved = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert saved["AP"]["dog"] is None


def test_ctrl_c_during_eval_is_one_line_and_writes_nothing(voc_run, monkeypatch, capsys):
    _, run = voc_run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(eval_script, "evaluate", interrupted)
    assert eval_script.main(["--weights", str(run / "final.pth"), "--output", str(run / "ctrl-c")]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("interrupted:") and "Traceback" not in err
    assert not (run / "ctrl-c" / "metrics.json").exists()


def test_detect_keeps_both_inputs_with_one_name_and_refuses_an_empty_folder(voc_run, tmp_path, capsys):
    _, run = voc_run
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


def test_detections_are_clipped_before_scoring_as_caffe_does():
    """A prior at the image edge whose regression reaches past it: the paper's decoding (eq. 2) gives
    x1 < 0; clipped to the image the box matches the object (IoU 1), unclipped it misses (IoU < 0.5)."""
    priors = torch.tensor([[0.25, 0.5, 0.5, 1.0]])  # cx, cy, w, h
    # eq. 2: cx = 0.25 + 0.1 * 0.5 * t_x = -0.1 and w = 0.5 * exp(0.2 * t_w) = 1.8 -> x1 = -1.0, x2 = 0.8
    t_x, t_w = -7.0, float(np.log(1.8 / 0.5) / 0.2)
    loc = torch.tensor([[[t_x, 0.0, t_w, 0.0]]])
    conf = torch.tensor([[[0.0, 10.0]]])
    unclipped = decode(loc, priors, (0.1, 0.2))[0, 0]
    assert unclipped[0] == pytest.approx(-1.0, abs=1e-5) and unclipped[2] == pytest.approx(0.8, abs=1e-5)
    (det,) = postprocess(loc, conf, BoxCoder(priors, (0.1, 0.2)), score_thresh=0.01)
    assert det["boxes"][0].tolist() == pytest.approx([0.0, 0.0, 0.8, 1.0], abs=1e-6)
    gt = {"img": (to_devkit(np.array([[0.0, 0.0, 80.0, 100.0]])), np.array([0]), np.array([False]))}

    def ap(box01):
        pixels = np.asarray(box01, np.float64).reshape(1, 4) * 100
        dets = {"cat": (np.array(["img"]), np.array([0.99]), to_devkit(pixels))}
        return evaluate_detections(dets, gt, ["cat"])["mAP"]

    assert ap(det["boxes"][0].numpy()) == pytest.approx(1.0)  # devkit: IoU 1, a hit, AP 1
    # unclipped, the devkit overlap is (81 x 101) / (181 x 101) = 0.45 < 0.5: a false positive, AP 0
    assert ap(unclipped.numpy()) == pytest.approx(0.0)


def test_a_full_disk_during_eval_prints_the_numbers_first_and_leaves_no_partial_file(voc_run, monkeypatch,
                                                                                     capsys):
    """Every write of the evaluation goes to /dev/full (ENOSPC, as on a full disk): the AP table still reaches the
    screen, then one line names what could not be written, and nothing half-written stays in the folder."""
    import contextlib
    import importlib

    @contextlib.contextmanager
    def full_disk(path):
        yield "/dev/full"
    monkeypatch.setattr(importlib.import_module("engine.evaluate"), "atomic_path", full_disk)
    root, run = voc_run
    out = run / "full"
    assert eval_script.main(["--weights", str(run / "final.pth"), "--workers", "0", "--output", str(out)]) == 1
    captured = capsys.readouterr()
    assert "| mAP" in captured.out and "images scored" in captured.out
    line = [x for x in captured.err.splitlines() if "could not write" in x]
    assert len(line) == 1 and "No space left on device" in line[0] and "the numbers above are complete" in line[0]
    assert "could not write 6 of the evaluation's files" in line[0] and not any(out.iterdir())


def test_detect_saves_its_detections_as_annotation_files_the_readers_give_back(voc_run, tmp_path, capsys):
    """--save-labels voc|yolo|coco DIR: one annotation file per image (COCO: one file), boxes in the image's own
    pixels, classes by name; read back by the repo's own VOC, YOLO and COCO readers they are the same boxes."""
    import shutil

    import yaml

    from data import COCOSource, YOLOSource
    root, run = voc_run
    photos = sorted((root / "JPEGImages").glob("*.jpg"))
    found = {}
    for kind in ("voc", "yolo", "coco"):
        assert detect.main(["--weights", str(run / "final.pth"), *map(str, photos), "--score-thresh", "0.02",
                            "--output", str(tmp_path / "drawn"), "--json", str(tmp_path / "det.json"),
                            "--save-labels", kind, str(tmp_path / kind)]) == 0
        assert f"{kind} annotation file(s) in {tmp_path / kind}" in capsys.readouterr().out
        report = json.loads((tmp_path / "det.json").read_text())
        found = {os.path.basename(p): sorted((d["class"], *d["box"]) for d in dets) for p, dets in report.items()}
    assert sum(map(len, found.values())) > 0

    def same(source):
        for i in range(len(source)):
            boxes, labels, _ = source.annotation(i)
            got = sorted((source.class_names[int(label)], *box) for box, label in zip(boxes.tolist(), labels))
            want = found[os.path.basename(source.image_path(i))]
            assert len(got) == len(want)
            for g in got:  # the report rounds to 0.1 px: each box read back has its detection within that
                assert any(w[0] == g[0] and np.abs(np.subtract(w[1:], g[1:])).max() <= 0.051 for w in want), g
    # VOC: the XMLs beside copies of the images are a LabelImg folder
    for photo in photos:
        shutil.copy(photo, tmp_path / "voc" / photo.name)
    for split in ("train", "test"):
        same(VOCSource(str(tmp_path / "voc"), [split], ["cell", "dot"]))
    # YOLO: images/ + labels/ + data.yaml with classes.txt's names
    for photo in photos:
        (tmp_path / "y" / "images" / "all").mkdir(parents=True, exist_ok=True)
        (tmp_path / "y" / "labels" / "all").mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, tmp_path / "y" / "images" / "all" / photo.name)
        label = tmp_path / "yolo" / f"{photo.stem}.txt"
        shutil.copy(label, tmp_path / "y" / "labels" / "all" / label.name)
    names = (tmp_path / "yolo" / "classes.txt").read_text().split()
    (tmp_path / "y" / "data.yaml").write_text(yaml.safe_dump({"names": names, "train": "images/all",
                                                              "val": "images/all"}))
    same(YOLOSource(str(tmp_path / "y"), ["val"], skip_empty=False))
    # COCO: the one file, with the images in a folder of the set's name
    (tmp_path / "c" / "annotations").mkdir(parents=True)
    shutil.copytree(root / "JPEGImages", tmp_path / "c" / "all")
    shutil.copy(tmp_path / "coco" / "detections.coco.json", tmp_path / "c" / "annotations" / "instances_all.json")
    coco = COCOSource(str(tmp_path / "c"), ["all"], class_names=["cell", "dot"], skip_empty=False)
    same(coco)
