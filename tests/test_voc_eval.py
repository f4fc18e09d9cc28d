import json
import math

import numpy as np
import pytest
from helpers import make_voc_folder

import eval as eval_script
from utils.voc_eval import (
    detection_columns,
    evaluate_class,
    evaluate_detections,
    read_results,
    to_devkit,
    voc_ap,
    write_results,
)

GT = {"A": (np.array([[10, 10, 50, 50], [100, 100, 150, 150]], float), np.array([False, False])),
      "B": (np.array([[10, 10, 60, 60], [200, 200, 240, 260], [400, 10, 450, 60]], float),
            np.array([False, False, True]))}
RANKED = [("A", 0.9, [10, 10, 50, 50]),      # TP
          ("A", 0.8, [10, 10, 50, 50]),      # second hit on the same object: FP
          ("B", 0.7, [10, 10, 60, 60]),      # TP
          ("B", 0.65, [400, 10, 450, 60]),   # on a difficult object: ignored
          ("B", 0.6, [300, 300, 320, 320]),  # nothing there: FP
          ("A", 0.5, [100, 100, 150, 150])]  # TP; B's second object is never found
# ranks TP FP TP FP TP over 4 objects: recall .25 .25 .5 .5 .75, precision 1 .5 .667 .5 .6
VOC07_BY_HAND = (1 + 1 + 1 + 2 / 3 + 2 / 3 + 2 / 3 + 0.6 + 0.6 + 0 + 0 + 0) / 11
VOC12_BY_HAND = 0.25 * 1 + 0.25 * (2 / 3) + 0.25 * 0.6


def test_ranked_list_known_11_point_and_area_values():
    ap, recall, precision = evaluate_class(detection_columns(RANKED), GT, metric="voc07")
    assert ap == pytest.approx(VOC07_BY_HAND)
    assert recall[-1] == pytest.approx(0.75) and precision[-1] == pytest.approx(0.6)
    assert evaluate_class(detection_columns(RANKED), GT, metric="voc12")[0] == pytest.approx(VOC12_BY_HAND)


def test_perfect_detections_and_order_independence():
    perfect = [("A", 0.9, [10, 10, 50, 50]), ("A", 0.8, [100, 100, 150, 150]),
               ("B", 0.7, [10, 10, 60, 60]), ("B", 0.6, [200, 200, 240, 260])]
    for metric in ("voc07", "voc12"):
        assert evaluate_class(detection_columns(perfect), GT, metric=metric)[0] == pytest.approx(1.0)
        assert evaluate_class(detection_columns(perfect[::-1]), GT, metric=metric)[0] == pytest.approx(1.0)


def test_devkit_plus_one_overlap():
    gt = {"A": (np.array([[1, 1, 10, 10]], float), np.array([False]))}
    # devkit: 10x5 = 50 pixels inside a 10x10 object -> overlap exactly 0.5 -> a hit (continuous: 36/81 miss)
    assert evaluate_class(detection_columns([("A", 0.9, [1, 1, 10, 5])]), gt)[0] == pytest.approx(1.0)
    assert evaluate_class(detection_columns([("A", 0.9, [1, 1, 10, 4])]), gt)[0] == pytest.approx(0.0)


def test_class_absent_from_image_and_class_without_ground_truth():
    ground_truth = {"A": (np.array([[10, 10, 50, 50]]), np.array([0]), np.array([False])),
                    "B": (np.zeros((0, 4)), np.zeros(0, int), np.zeros(0, bool))}  # an image without objects
    detections = {"cat": detection_columns([("A", 0.9, [10, 10, 50, 50]), ("B", 0.95, [10, 10, 50, 50])]),
                  "dog": detection_columns([("A", 0.8, [10, 10, 50, 50])])}
    metrics = evaluate_detections(detections, ground_truth, ["cat", "dog"])
    # cat: FP (image B) then TP: precision at recall 1 is 0.5 -> 11-point AP 0.5
    assert metrics["AP"]["cat"] == pytest.approx(0.5)
    assert math.isnan(metrics["AP"]["dog"]) and metrics["mAP"] == pytest.approx(0.5)


def test_to_devkit_inverts_the_loader_conversion():
    # data/voc.py reads (x1, y1, x2, y2) as (x1 - 1, y1 - 1, x2, y2)
    assert to_devkit([[0, 4, 10, 20]]).tolist() == [[1, 5, 10, 20]]


def test_from_results_round_trip(tmp_path):
    make_voc_folder(tmp_path / "voc", {
        "A": ([("cat", 10, 10, 50, 50), ("cat", 100, 100, 150, 150)], 200, 200),
        "B": ([("cat", 10, 10, 60, 60), ("cat", 200, 200, 240, 260), ("dog", 1, 1, 30, 30)], 300, 300)},
        sets={"test": ["A", "B"]})
    detections = {"cat": detection_columns(d for d in RANKED if d[2] != [400, 10, 450, 60]),
                  "dog": detection_columns([("B", 0.5, [1, 1, 30, 30])])}
    write_results(tmp_path / "res", detections, ["cat", "dog"])
    ids, scores, boxes = read_results(tmp_path / "res", ["cat", "dog"])["dog"]
    assert ids.tolist() == ["B"] and scores.tolist() == [0.5] and boxes.tolist() == [[1.0, 1.0, 30.0, 30.0]]
    code = eval_script.main(["--dataset", "VOC", "--dataset-root", str(tmp_path / "voc"), "--sets", "test",
                             "--class-names", "cat", "dog", "--from-results", str(tmp_path / "res"),
                             "--output", str(tmp_path / "out")])
    assert code == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["AP"]["cat"] == pytest.approx(VOC07_BY_HAND) and metrics["AP"]["dog"] == pytest.approx(1.0)
    assert metrics["mAP"] == pytest.approx((VOC07_BY_HAND + 1) / 2)


def test_voc_ap_metric_name_is_checked():
    with pytest.raises(ValueError):
        voc_ap(np.array([1.0]), np.array([1.0]), "voc2099")


def devkit_reference(detections, ground_truth, iou_thresh=0.5):
    """VOCevaldet.m transcribed loop by loop: returns (tp, fp) per detection in descending-score order."""
    order = sorted(range(len(detections)), key=lambda i: -detections[i][1])
    taken = {k: [False] * len(v[0]) for k, v in ground_truth.items()}
    tp, fp = [], []
    for i in order:
        image_id, _, bb = detections[i]
        ovmax, jmax = -math.inf, -1
        boxes, difficult = ground_truth.get(image_id, (np.zeros((0, 4)), np.zeros(0, bool)))
        for j, bbgt in enumerate(boxes):
            bi = [max(bb[0], bbgt[0]), max(bb[1], bbgt[1]), min(bb[2], bbgt[2]), min(bb[3], bbgt[3])]
            iw, ih = bi[2] - bi[0] + 1, bi[3] - bi[1] + 1
            if iw > 0 and ih > 0:
                ua = (bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1) + (bbgt[2] - bbgt[0] + 1) * (bbgt[3] - bbgt[1] + 1) \
                    - iw * ih
                ov = iw * ih / ua
                if ov > ovmax:
                    ovmax, jmax = ov, j
        if ovmax >= iou_thresh:
            if not difficult[jmax]:
                if not taken[image_id][jmax]:
                    tp.append(1); fp.append(0); taken[image_id][jmax] = True  # noqa: E702
                else:
                    tp.append(0); fp.append(1)  # noqa: E702
            else:
                tp.append(0); fp.append(0)  # noqa: E702
        else:
            tp.append(0); fp.append(1)  # noqa: E702
    return np.cumsum(tp), np.cumsum(fp)


def test_vectorised_scoring_equals_the_devkit_loop_on_random_cases():
    rng = np.random.default_rng(0)
    for case in range(20):
        ground_truth = {}
        for image in range(6):
            n = int(rng.integers(0, 4))
            xy = rng.integers(1, 80, (n, 2)).astype(float)
            ground_truth[f"im{image}"] = (np.concatenate([xy, xy + rng.integers(5, 30, (n, 2))], 1),
                                          rng.random(n) < 0.2)
        detections = []
        for _ in range(int(rng.integers(0, 40))):
            image_id = f"im{rng.integers(0, 7)}"  # im6 has no ground truth at all
            boxes = ground_truth.get(image_id, (np.zeros((0, 4)),))[0]
            if len(boxes) and rng.random() < 0.7:  # jitter a true box so that some hits and duplicates occur
                box = boxes[rng.integers(len(boxes))] + rng.integers(-3, 4, 4)
            else:
                xy = rng.integers(1, 80, 2)
                box = np.r_[xy, xy + rng.integers(5, 30, 2)]
            detections.append((image_id, float(rng.integers(0, 10)) / 10, [float(v) for v in box]))
        npos = sum(int((~d).sum()) for _, d in ground_truth.values())
        if npos == 0:
            continue
        ap, recall, precision = evaluate_class(detection_columns(detections), ground_truth)
        tp, fp = devkit_reference(detections, ground_truth)
        assert np.allclose(recall, tp / npos), case
        assert np.allclose(precision, tp / np.maximum(tp + fp, np.finfo(float).eps)), case
