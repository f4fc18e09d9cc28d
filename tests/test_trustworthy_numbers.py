"""Runs that used to finish with exit 0 and a wrong or meaningless number, on data each test writes."""
import json
import logging
import os

import cv2
import numpy as np
import pytest
import torch
from helpers import make_voc_folder

import eval as eval_script
import train
from config import config_for
from data import COCOSource, DatasetError, SSDDataset, VOCSource, build_source, decode_image
from data.check import main as check_main
from data.transforms import ResizeTransform
from engine import evaluate, evenly_spaced, write_metrics
from layers import BoxCoder, decode, postprocess
from models import SSD
from utils.checkpoint import read_state
from utils.voc_eval import evaluate_detections, to_devkit

FAST = ["--basenet", "none", "--batch-size", "2", "--workers", "0", "--no-batch-norm", "--eval-every", "0",
        "--no-tensorboard", "--checkpoint-every", "0", "--log-every", "1", "--warmup-iters", "0"]


def raccoon_folder(folder, name="raccoon", count=4):
    images = {f"img{i}": ([(name, 3, 4, 30, 28), ("background_thing", 30, 30, 50, 50)], 64, 48)
              for i in range(count)}
    make_voc_folder(folder, images, sets={"train": list(images)[:2], "test": list(images)[2:]})
    return folder


def test_label_typo_stops_before_training_naming_what_the_annotations_hold(tmp_path, capsys):
    root = raccoon_folder(tmp_path / "data")
    code = train.main(["--dataset", "VOC", "--dataset-root", str(root), "--sets", "train", "--test-sets", "test",
                       "--labels", "racoon", "--max-iter", "1", "--output", str(tmp_path / "run")] + FAST)
    err = capsys.readouterr().err
    assert code == 2 and "no object of --labels racoon" in err and "raccoon (2)" in err
    assert "Traceback" not in err and not (tmp_path / "run" / "final.pth").exists()
    # forgetting --labels on a custom folder falls back to VOC's 20 names: the same stop, not a run on nothing
    code = train.main(["--dataset", "VOC", "--dataset-root", str(root), "--sets", "train", "--test-sets", "test",
                       "--max-iter", "1", "--output", str(tmp_path / "run2")] + FAST)
    assert code == 2 and "raccoon (2)" in capsys.readouterr().err
    # one typo among good labels: the run goes on, and says which class has nothing to learn from
    code = train.main(["--dataset", "VOC", "--dataset-root", str(root), "--sets", "train", "--test-sets", "test",
                       "--labels", "raccoon", "background_thng", "--max-iter", "1", "--no-final-eval",
                       "--output", str(tmp_path / "run3")] + FAST)
    err = capsys.readouterr().err
    assert code == 0 and "no training object of class(es) ['background_thng']" in err


def test_evaluation_without_ground_truth_fails(tmp_path, capsys):
    root = raccoon_folder(tmp_path / "data")
    run = tmp_path / "run"
    assert train.main(["--dataset", "VOC", "--dataset-root", str(root), "--sets", "train", "--test-sets", "test",
                       "--labels", "raccoon", "--max-iter", "1", "--no-final-eval", "--output", str(run)] + FAST) == 0
    other = tmp_path / "other"
    make_voc_folder(other, {"x": ([("dog", 3, 3, 20, 20)], 64, 48)}, sets={"test": ["x"]})
    capsys.readouterr()
    code = eval_script.main(["--weights", str(run / "final.pth"), "--dataset-root", str(other), "--workers", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "hold no object of the classes ['raccoon']" in err and "nothing to score" in err


def test_dropped_objects_are_summarised_once_per_name(tmp_path, caplog):
    images = {f"i{k}": ([("mask", 1, 1, 10, 10), ("mask_weared_incorrect", 2, 2, 9, 9),
                         ("mask_weared_incorrect", 3, 3, 20, 20)], 30, 30) for k in range(15)}
    make_voc_folder(tmp_path, images)
    with caplog.at_level(logging.WARNING):
        VOCSource(str(tmp_path), ["trainval"], ["mask"])
    lines = [r.getMessage() for r in caplog.records]
    assert "VOC: 30 objects of class 'mask_weared_incorrect' not in --labels, dropped" in lines
    assert not any("i3.xml" in line for line in lines)  # per-file detail is the checker's


def write_png_rgba(path):
    rgba = np.zeros((48, 64, 4), np.uint8)
    rgba[10:30, 10:40] = (0, 0, 255, 255)  # opaque red box, transparent elsewhere (black RGB underneath)
    cv2.imwrite(str(path), rgba)


def test_truncated_jpeg_and_transparent_png_decode(tmp_path):
    image = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8), (0, 0), 2)
    cv2.imwrite(str(tmp_path / "full.jpg"), image)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:-20])  # a few bytes short, as scraped files often are
    cut, alpha, _ = decode_image(str(tmp_path / "cut.jpg"))
    assert cut.shape == (120, 160, 3) and not alpha
    write_png_rgba(tmp_path / "a.png")
    composited, alpha, _ = decode_image(str(tmp_path / "a.png"))
    assert alpha and composited.shape == (48, 64, 3)
    assert composited[0, 0].tolist() == [255, 255, 255]  # transparent -> white, not the hidden black
    assert composited[20, 20].tolist() == [0, 0, 255]
    (tmp_path / "broken.jpg").write_bytes(data[:200])
    with pytest.raises(ValueError, match="broken.jpg: corrupt"):
        decode_image(str(tmp_path / "broken.jpg"))


def test_evaluation_scores_every_image_once(tmp_path, capsys):
    images = {f"t{i}": ([("cat", 5, 5, 40, 40)], 64, 48) for i in range(4)}
    make_voc_folder(tmp_path, images, sets={"test": list(images)})
    (tmp_path / "JPEGImages" / "t1.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    cfg = config_for("VOC", dataset_root=str(tmp_path), test_sets=["test"], labels=["cat"], batch_norm=False,
                     batch_size=2, workers=0)
    source = build_source(cfg, train=False)
    dataset = SSDDataset(source, ResizeTransform(300), substitute=False)
    image, target, index, size = dataset[1]
    assert size == (0, 0) and index == 1 and target.shape == (0, 5)
    model = SSD.from_config(cfg).eval()
    with pytest.raises(DatasetError, match="t1.jpg: cannot be decoded.*--unreadable miss"):
        evaluate(model, cfg, source, torch.device("cpu"))
    metrics = evaluate(model, cfg.replace(unreadable="miss"), source, torch.device("cpu"),
                       output=str(tmp_path / "out"))
    assert metrics["unreadable"] == 1
    ids = [line.split()[0] for line in open(tmp_path / "out" / "comp4_det_test_cat.txt")]
    assert "t1" not in ids and set(ids) <= {"t0", "t2", "t3"}


def test_coco_export_labels_select_and_placeholder_category_is_left_out(tmp_path, caplog):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "train").mkdir()
    for i in (1, 2):
        cv2.imwrite(str(tmp_path / "train" / f"{i}.jpg"), np.zeros((100, 100, 3), np.uint8))
    doc = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 100, "height": 100} for i in (1, 2)],
           "categories": [{"id": 0, "name": "cells"}, {"id": 1, "name": "rbc"}, {"id": 2, "name": "wbc"},
                          {"id": 3, "name": "stray"}],
           "annotations": [{"id": k, "image_id": 1 + k % 2, "category_id": c, "bbox": [10, 10, 30, 30],
                            "area": 900, "iscrowd": 0} for k, c in enumerate([1, 1, 2, 3])]}
    (tmp_path / "annotations" / "instances_train.json").write_text(json.dumps(doc))
    with caplog.at_level(logging.WARNING):
        source = COCOSource(str(tmp_path), ["train"])
    assert source.class_names == ["rbc", "wbc", "stray"]
    assert any("1 category without any annotation left out: cells" in r.getMessage() for r in caplog.records)
    chosen = COCOSource(str(tmp_path), ["train"], labels=["wbc", "rbc"])
    assert chosen.class_names == ["wbc", "rbc"] and chosen.category_ids == [2, 1]
    assert len(chosen.table.labels) == 3
    assert chosen.problems.counts["objects of category 'stray' not in --labels, dropped"] == 1
    with pytest.raises(DatasetError, match="no category named \\['wbcc'\\]; its categories: cells, rbc"):
        COCOSource(str(tmp_path), ["train"], labels=["wbcc"])
    with pytest.raises(DatasetError, match="instances_val.json: not found.*ROOT/val/"):
        COCOSource(str(tmp_path), ["val"])


def test_checker_runs_the_training_and_evaluation_code_paths(tmp_path, capsys):
    images = {"a": ([("cat", 1, 1, 10, 10), ("cat", 2, 2, 20, 20, 1)], 30, 30), "b": ([], 30, 30)}
    make_voc_folder(tmp_path, images, sets={"train": ["a", "b"], "test": ["a", "b"]})
    write_png_rgba(tmp_path / "JPEGImages" / "a.png")
    os.remove(tmp_path / "JPEGImages" / "a.jpg")
    common = ["--dataset", "VOC", "--dataset-root", str(tmp_path), "--labels", "cat"]
    check_main(common + ["--test-sets", "test", "--split", "test"])
    out = capsys.readouterr().out
    assert "images: 2 readable (1 without objects)" in out and "transparent images: 1" in out
    check_main(common + ["--sets", "train", "--no-train-difficult"])
    out = capsys.readouterr().out
    assert "objects used: 1 (difficult ones excluded)" in out


def test_metrics_json_is_valid_json_with_a_class_without_ground_truth(tmp_path):
    metrics = evaluate_detections({}, {"x": (np.array([[1, 1, 9, 9]]), np.array([0]), np.array([False]))},
                                  ["cat", "dog"])
    assert np.isnan(metrics["AP"]["dog"])
    write_metrics(metrics, str(tmp_path))
    text = (tmp_path / "metrics.json").read_text()
    saved = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert saved["AP"]["dog"] is None


def test_single_folder_defaults_and_evenly_spaced_limit(tmp_path):
    make_voc_folder(tmp_path / "with", {"a": ([("cat", 1, 1, 9, 9)], 20, 20)}, sets={"trainval": ["a"],
                                                                                      "test": ["a"]})
    cfg = config_for("VOC", dataset_root=str(tmp_path / "with"), labels=["cat"])
    assert build_source(cfg, train=False).name == "VOC" and len(build_source(cfg, train=True)) == 1
    make_voc_folder(tmp_path / "without", {"a": ([("cat", 1, 1, 9, 9)], 20, 20)}, sets={"train": ["a"]})
    cfg = config_for("VOC", dataset_root=str(tmp_path / "without"), labels=["cat"])
    with pytest.raises(DatasetError, match="no image set 'test'.*pass --test-sets with one of: train"):
        build_source(cfg, train=False)
    assert evenly_spaced(10, 3) == [0, 4, 9] and evenly_spaced(5, 0) == [0, 1, 2, 3, 4]
    assert evenly_spaced(100, 4) == [0, 33, 66, 99]


def test_resume_from_final_weights_or_a_run_folder(tmp_path, capsys):
    run = str(tmp_path / "run")
    tiny = ["--dataset", "shapes", "--shapes-train-images", "4", "--batch-size", "2", "--workers", "0",
            "--eval-every", "0", "--no-final-eval", "--no-tensorboard", "--checkpoint-every", "0"]
    assert train.main(tiny + ["--max-iter", "2", "--output", run]) == 0
    os.remove(os.path.join(run, "ckpt_0000002.pth"))
    capsys.readouterr()
    assert train.main(tiny + ["--max-iter", "3", "--resume", os.path.join(run, "final.pth")]) == 0
    assert "holds weights only: continuing from its weights at iteration 2" in capsys.readouterr().err
    assert read_state(os.path.join(run, "final.pth"))["iteration"] == 3
    assert train.main(tiny + ["--max-iter", "4", "--resume", run]) == 0  # a folder: its newest checkpoint
    assert read_state(os.path.join(run, "final.pth"))["iteration"] == 4


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
