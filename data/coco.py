"""COCO 2014/2017 instances through pycocotools, and COCO-format datasets of your own.

Layout: root/annotations/instances_<set>.json and root/<set>/ holding the images (train2017, val2017, train2014,
val2014; minival/valminusminival sets read val2014 images). An export from Roboflow, CVAT or Label Studio maps onto
it by renaming: its `_annotations.coco.json` (Roboflow, one per split folder) or `annotations/instances_default.json`
(CVAT) becomes annotations/instances_<set>.json, and the split's images go to root/<set>/.

Classes: by default every category that has at least one annotation, in category-id order (an empty placeholder
category, as Roboflow writes, is left out with one notice); `labels` selects and orders categories by name and the
rest are dropped with a count. `category_ids[label]` maps a label back to its category id. Crowd boxes never enter
training (COCOeval ignores detections on them). Images without any usable annotation are skipped for training (they
carry no positive and SSD mines negatives only next to positives) and kept for evaluation.
"""
import contextlib
import io
import os
from collections import Counter

import numpy as np

from .common import DatasetError, Problems, Record, RecordSource, clean_boxes, exists, log


def _image_folder(root: str, image_set: str) -> str:
    name = "val2014" if "minival" in image_set else image_set
    return os.path.join(root, name)


def select_categories(api, labels, ann_file: str) -> tuple:
    """-> (category ids, names) in label order: `labels` by name, or every category with an annotation."""
    cats = api.loadCats(sorted(api.getCatIds()))
    by_name = {c["name"]: c["id"] for c in cats}
    if labels:
        missing = [n for n in labels if n not in by_name]
        if missing:
            raise DatasetError(f"{ann_file}: no category named {missing}; its categories: "
                               f"{', '.join(sorted(by_name))}")
        return [by_name[n] for n in labels], list(labels)
    counts = Counter(a["category_id"] for a in api.dataset.get("annotations", []))
    empty = [c["name"] for c in cats if counts[c["id"]] == 0]
    if empty:
        log.warning("%s: %d categor%s without any annotation left out: %s", ann_file, len(empty),
                    "y" if len(empty) == 1 else "ies", ", ".join(empty))
    kept = [c for c in cats if counts[c["id"]] > 0]
    return [c["id"] for c in kept], [c["name"] for c in kept]


class COCOSource(RecordSource):
    def __init__(self, root: str, image_sets, labels=None, skip_empty: bool = True, name: str = "COCO"):
        """`labels`: category names to keep, in label order (None or empty: every category with annotations)."""
        from pycocotools.coco import COCO

        self.root = os.path.expanduser(root)
        self.name = name
        self.records, self.problems, self.names_found = [], Problems(), Counter()
        self.apis = {}
        if not os.path.isdir(self.root):
            raise DatasetError(f"{self.root}: dataset root not found (see README: Datasets)")
        for image_set in ([image_sets] if isinstance(image_sets, str) else image_sets):
            ann_file = os.path.join(self.root, "annotations", f"instances_{image_set}.json")
            if not exists(ann_file):
                raise DatasetError(f"{ann_file}: not found; a COCO-format set '{image_set}' is read from "
                                   f"ROOT/annotations/instances_{image_set}.json with its images in "
                                   f"ROOT/{image_set}/ (see README: COCO-format datasets)")
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    api = COCO(ann_file)
                except Exception as exc:  # malformed JSON or missing keys
                    raise DatasetError(f"{ann_file}: cannot be read as COCO instances ({exc})") from None
            self.apis[image_set] = api
            cat_ids, class_names = select_categories(api, labels or self.__dict__.get("class_names"), ann_file)
            if not hasattr(self, "category_ids"):
                self.category_ids, self.class_names = cat_ids, class_names
            elif cat_ids != self.category_ids:
                raise DatasetError(f"{ann_file}: categories differ from the first set's")
            cat_to_label = {c: i for i, c in enumerate(cat_ids)}
            id_to_name = {c["id"]: c["name"] for c in api.loadCats(api.getCatIds())}
            folder = _image_folder(self.root, image_set)
            missing_images = 0
            for image_id in sorted(api.getImgIds()):
                info = api.loadImgs(image_id)[0]
                anns = api.loadAnns(api.getAnnIds(imgIds=image_id, iscrowd=False))
                self.names_found.update(id_to_name.get(a["category_id"], str(a["category_id"])) for a in anns)
                dropped = Counter(id_to_name.get(a["category_id"]) for a in anns
                                  if a["category_id"] not in cat_to_label)
                for cat_name, count in dropped.items():
                    self.problems.add(f"objects of category '{cat_name}' not in --labels, dropped",
                                      f"{ann_file} image {image_id}: {count} object(s) of '{cat_name}' dropped",
                                      count)
                anns = [a for a in anns if a["category_id"] in cat_to_label]
                boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                                   a["bbox"][1] + a["bbox"][3]] for a in anns], dtype=np.float32).reshape(-1, 4)
                labels_ = np.array([cat_to_label[a["category_id"]] for a in anns], dtype=np.int64)
                path = os.path.join(folder, info["file_name"])
                keep = clean_boxes(boxes, info.get("width", 0), info.get("height", 0),
                                   f"{ann_file} image {image_id}", self.problems)
                boxes, labels_ = boxes[keep], labels_[keep]
                if skip_empty and len(labels_) == 0:
                    continue
                if not exists(path):
                    missing_images += 1
                    self.problems.add("listed images not found, skipped",
                                      f"{path}: image listed in {ann_file} does not exist, skipped")
                    continue
                self.records.append(Record(str(image_id), path, boxes, labels_, np.zeros(len(labels_), bool),
                                           info.get("width", 0), info.get("height", 0),
                                           extra={"coco_id": image_id, "set": image_set}))
        self.problems.report(name)
        if not self.records:
            raise DatasetError(f"{self.root}: COCO set(s) {list(image_sets)} hold no usable image"
                               + (f" ({len(self.problems)} problem(s), first: {self.problems.lines[0]})"
                                  if self.problems else ""))
        log.info("%s %s: %d images, %d objects of %d classes: %s", name, list(image_sets), len(self.records),
                 sum(len(r.labels) for r in self.records), len(self.class_names), ", ".join(self.class_names))

    @property
    def api(self):
        """The pycocotools index scoring uses (one evaluation set)."""
        if len(self.apis) != 1:
            raise DatasetError(f"COCO evaluation scores one set at a time, got {list(self.apis)}")
        return next(iter(self.apis.values()))

    def coco_id(self, index: int) -> int:
        return self.records[index].extra["coco_id"]
