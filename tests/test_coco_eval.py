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
