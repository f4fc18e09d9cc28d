import json

import cv2
import numpy as np
import pytest

from data import COCOSource
from utils.coco_eval import score_coco


def test_coco_scoring_on_a_tiny_json(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "val2017").mkdir()
    for i in (1, 2):
        cv2.imwrite(str(tmp_path / "val2017" / f"{i}.jpg"), np.zeros((100, 100, 3), np.uint8))
    doc = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 100, "height": 100} for i in (1, 2)],
           "categories": [{"id": 3, "name": "car"}, {"id": 7, "name": "train"}],
           "annotations": [
               {"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 40, 40], "area": 1600, "iscrowd": 0},
               {"id": 2, "image_id": 2, "category_id": 7, "bbox": [20, 30, 50, 60], "area": 3000, "iscrowd": 0}]}
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(doc))
    source = COCOSource(str(tmp_path), "val2017", skip_empty=False)
    perfect = {0: {"boxes": np.array([[10, 10, 50, 50]], float), "scores": np.array([0.9]), "labels": np.array([0])},
               1: {"boxes": np.array([[20, 30, 70, 90]], float), "scores": np.array([0.8]), "labels": np.array([1])}}
    assert source.class_names == ["car", "train"]
    def by_coco_id(results):
        return {source.coco_id(i): det for i, det in results.items()}
    metrics = score_coco(source.api, by_coco_id(perfect), source.category_ids, str(tmp_path / "out"),
                         source.class_names)
    assert metrics["mAP"] == pytest.approx(1.0) and metrics["coco"]["AP50"] == pytest.approx(1.0)
    assert metrics["AP"] == {"car": pytest.approx(1.0), "train": pytest.approx(1.0)}
    # no small object in this set (areas 1600 and 3000 >= 32^2): COCOeval's -1 is None, not a number
    assert metrics["coco"]["AP_small"] is None and "-1.000" not in metrics["summary"]
    saved = json.loads((tmp_path / "out" / "detections_coco.json").read_text())
    assert saved[1]["category_id"] == 7 and saved[1]["bbox"] == [20, 30, 50, 60]
    # a wrong class for the second image halves the AP
    perfect[1]["labels"] = np.array([0])
    halved = score_coco(source.api, by_coco_id(perfect), source.category_ids, class_names=source.class_names)
    assert halved["mAP"] == pytest.approx(0.5) and halved["AP"]["train"] == pytest.approx(0.0)


def write_coco(tmp_path, annotations, images=(1, 2), class_names=None):
    (tmp_path / "annotations").mkdir(exist_ok=True)
    (tmp_path / "val2017").mkdir(exist_ok=True)
    for i in images:
        cv2.imwrite(str(tmp_path / "val2017" / f"{i}.jpg"), np.zeros((100, 100, 3), np.uint8))
    doc = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 100, "height": 100} for i in images],
           "categories": [{"id": 3, "name": "car"}, {"id": 7, "name": "train"}],
           "annotations": [dict(a, id=k + 1, iscrowd=a.get("iscrowd", 0)) for k, a in enumerate(annotations)]}
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(doc))
    return COCOSource(str(tmp_path), "val2017", class_names=class_names, skip_empty=False)


def test_ground_truth_the_reader_drops_is_not_scored(tmp_path, caplog):
    """The train boxes have negative widths: the log says they were dropped, so the scorer must not see them (it
    would give train AP 0 instead of "-"); a crowd region of car still makes detections on it ignored."""
    source = write_coco(tmp_path, [
        {"image_id": 1, "category_id": 3, "bbox": [10, 10, 40, 40], "area": 1600},
        {"image_id": 2, "category_id": 7, "bbox": [70, 30, -50, 60], "area": 3000},
        {"image_id": 2, "category_id": 7, "bbox": [90, 10, -20, 20], "area": 400},
        {"image_id": 2, "category_id": 3, "bbox": [0, 50, 100, 50], "area": 5000, "iscrowd": 1}])
    assert "COCO: 2 zero-area or inverted boxes, dropped" in caplog.text
    found = {source.coco_id(0): {"boxes": np.array([[10, 10, 50, 50]], float), "scores": np.array([0.9]),
                                 "labels": np.array([0])},
             source.coco_id(1): {"boxes": np.array([[5, 55, 95, 95]], float), "scores": np.array([0.95]),
                                 "labels": np.array([0])}}
    metrics = score_coco(source.api, found, source.category_ids, class_names=source.class_names)
    assert metrics["AP"] == {"car": pytest.approx(1.0), "train": None}
    gt = source.scored_ground_truth()
    assert [(a["category_id"], a["iscrowd"]) for a in gt["annotations"]] == [(3, 0), (3, 1)]


def test_coco_metrics_without_any_detection(tmp_path):
    source = write_coco(tmp_path, [{"image_id": 1, "category_id": 3, "bbox": [10, 10, 40, 40], "area": 1600}],
                        class_names=["car", "train"])
    none = {source.coco_id(i): {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0, int)}
            for i in range(len(source))}
    metrics = score_coco(source.api, none, source.category_ids, class_names=source.class_names)
    assert metrics["mAP"] == 0.0 and metrics["AP"] == {"car": 0.0, "train": None}
    assert metrics["coco"]["AP_small"] is None and metrics["coco"]["AP_medium"] == 0.0
    assert metrics["summary"].count("Average Precision") == 6


def test_metric_means_the_same_for_every_format(tmp_path):
    from config_resolve import resolve
    from engine.evaluate import score_voc
    from utils.errors import ConfigError
    assert resolve({"dataset": "COCO"}).test.metric == "coco" and resolve({"dataset": "VOC"}).test.metric == "voc07"
    with pytest.raises(ConfigError, match="--metric coco: COCO AP is scored on COCO-format ground truth"):
        resolve({"dataset": "YOLO", "metric": "coco"})
    # the devkit's mAP@0.5 on COCO boxes: one of two cars found (VOC07 11-point: 6/11), train not found
    source = write_coco(tmp_path, [{"image_id": 1, "category_id": 3, "bbox": [10, 10, 40, 40], "area": 1600},
                                   {"image_id": 2, "category_id": 3, "bbox": [20, 20, 40, 40], "area": 1600},
                                   {"image_id": 2, "category_id": 7, "bbox": [60, 60, 30, 30], "area": 900}])
    results = {0: {"boxes": np.array([[12, 12, 50, 50]], np.float32), "scores": np.array([0.9]),
                   "labels": np.array([0])},
               1: {"boxes": np.zeros((0, 4), np.float32), "scores": np.zeros(0), "labels": np.zeros(0, int)}}
    metrics = score_voc(source, results, "voc07")
    assert metrics["metric"] == "voc07"
    assert metrics["AP"]["car"] == pytest.approx(6 / 11) and metrics["AP"]["train"] == 0.0
