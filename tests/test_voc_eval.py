import json
import math

import numpy as np
import pytest

import eval as eval_script
from utils.voc_eval import evaluate_class, evaluate_detections, read_results, to_devkit, voc_ap, write_results
from helpers import make_voc_folder

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
    ap, recall, precision = evaluate_class(RANKED, GT, metric="voc07")
    assert ap == pytest.approx(VOC07_BY_HAND)
    assert recall[-1] == pytest.approx(0.75) and precision[-1] == pytest.approx(0.6)
    assert evaluate_class(RANKED, GT, metric="voc12")[0] == pytest.approx(VOC12_BY_HAND)


def test_perfect_detections_and_order_independence():
    perfect = [("A", 0.9, [10, 10, 50, 50]), ("A", 0.8, [100, 100, 150, 150]),
               ("B", 0.7, [10, 10, 60, 60]), ("B", 0.6, [200, 200, 240, 260])]
    for metric in ("voc07", "voc12"):
        assert evaluate_class(perfect, GT, metric=metric)[0] == pytest.approx(1.0)
        assert evaluate_class(perfect[::-1], GT, metric=metric)[0] == pytest.approx(1.0)


def test_devkit_plus_one_overlap():
    gt = {"A": (np.array([[1, 1, 10, 10]], float), np.array([False]))}
    # devkit: 10x5 = 50 pixels inside a 10x10 object -> overlap exactly 0.5 -> a hit (continuous: 36/81 miss)
    assert evaluate_class([("A", 0.9, [1, 1, 10, 5])], gt)[0] == pytest.approx(1.0)
    assert evaluate_class([("A", 0.9, [1, 1, 10, 4])], gt)[0] == pytest.approx(0.0)


def test_class_absent_from_image_and_class_without_ground_truth():
    ground_truth = {"A": (np.array([[10, 10, 50, 50]]), np.array([0]), np.array([False])),
                    "B": (np.zeros((0, 4)), np.zeros(0, int), np.zeros(0, bool))}  # an image without objects
    detections = {"cat": [("A", 0.9, [10, 10, 50, 50]), ("B", 0.95, [10, 10, 50, 50])],
                  "dog": [("A", 0.8, [10, 10, 50, 50])]}
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
    detections = {"cat": [d for d in RANKED if d[2] != [400, 10, 450, 60]], "dog": [("B", 0.5, [1, 1, 30, 30])]}
    write_results(tmp_path / "res", detections, ["cat", "dog"])
    assert read_results(tmp_path / "res", ["cat", "dog"])["dog"] == [("B", 0.5, [1.0, 1.0, 30.0, 30.0])]
    code = eval_script.main(["--dataset", "VOC", "--dataset-root", str(tmp_path / "voc"), "--sets", "test",
                             "--labels", "cat", "dog", "--from-results", str(tmp_path / "res"),
                             "--output", str(tmp_path / "out")])
    assert code == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["AP"]["cat"] == pytest.approx(VOC07_BY_HAND) and metrics["AP"]["dog"] == pytest.approx(1.0)
    assert metrics["mAP"] == pytest.approx((VOC07_BY_HAND + 1) / 2)


def test_voc_ap_metric_name_is_checked():
    with pytest.raises(ValueError):
        voc_ap(np.array([1.0]), np.array([1.0]), "voc2099")
