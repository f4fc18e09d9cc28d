"""COCO 2014/2017 instances through pycocotools.

Layout: root/annotations/instances_<set>.json and root/<images>/ with <images> = the set name
(train2017, val2017, train2014, val2014; minival/valminusminival sets read val2014 images).
The 80 category ids map to contiguous labels 0..79 (`category_ids[label]` maps back). Crowd boxes never enter
training (COCOeval ignores detections on them). Images without any usable annotation are skipped for training
(they carry no positive and SSD mines negatives only next to positives) and kept for evaluation.
"""
import contextlib
import io
import os

import numpy as np

from .common import DatasetError, Record, RecordSource, clean_boxes, exists, log, report_problems


def _image_folder(root: str, image_set: str) -> str:
    name = "val2014" if "minival" in image_set else image_set
    return os.path.join(root, name)


class COCODetection(RecordSource):
    def __init__(self, root: str, image_sets, skip_empty: bool = True, name: str = "COCO"):
        from pycocotools.coco import COCO

        self.root = os.path.expanduser(root)
        self.name = name
        self.records, self.problems = [], []
        self.apis = {}
        for image_set in ([image_sets] if isinstance(image_sets, str) else image_sets):
            ann_file = os.path.join(self.root, "annotations", f"instances_{image_set}.json")
            if not exists(ann_file):
                raise DatasetError(f"{ann_file}: COCO annotation file for set '{image_set}' not found")
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    api = COCO(ann_file)
                except Exception as exc:  # malformed JSON or missing keys
                    raise DatasetError(f"{ann_file}: cannot be read as COCO instances ({exc})") from None
            self.apis[image_set] = api
            cat_ids = sorted(api.getCatIds())
            if not hasattr(self, "category_ids"):
                self.category_ids = cat_ids
                self.class_names = [api.loadCats(c)[0]["name"] for c in cat_ids]
            elif cat_ids != self.category_ids:
                raise DatasetError(f"{ann_file}: categories differ from the first set's")
            cat_to_label = {c: i for i, c in enumerate(cat_ids)}
            folder = _image_folder(self.root, image_set)
            for image_id in sorted(api.getImgIds()):
                info = api.loadImgs(image_id)[0]
                anns = [a for a in api.loadAnns(api.getAnnIds(imgIds=image_id, iscrowd=False))
                        if a["category_id"] in cat_to_label]
                boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                                   a["bbox"][1] + a["bbox"][3]] for a in anns], dtype=np.float32).reshape(-1, 4)
                labels = np.array([cat_to_label[a["category_id"]] for a in anns], dtype=np.int64)
                path = os.path.join(folder, info["file_name"])
                keep = clean_boxes(boxes, info["width"], info["height"], f"{ann_file} image {image_id}",
                                   self.problems)
                boxes, labels = boxes[keep], labels[keep]
                if skip_empty and len(labels) == 0:
                    continue
                if not exists(path):
                    self.problems.append(f"{path}: image listed in {ann_file} does not exist, skipped")
                    continue
                self.records.append(Record(str(image_id), path, boxes, labels, np.zeros(len(labels), bool),
                                           info["width"], info["height"], extra={"coco_id": image_id,
                                                                                 "set": image_set}))
        report_problems(self.problems, name)
        if not self.records:
            raise DatasetError(f"{self.root}: COCO set(s) {image_sets} hold no usable image")
        log.info("%s %s: %d images", name, image_sets, len(self.records))
