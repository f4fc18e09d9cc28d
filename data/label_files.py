"""Detections written as annotation files, for annotation tools' model-assisted labelling: load them into LabelImg,
CVAT or Label Studio, correct them, and train again (detect.py --save-labels voc|yolo|coco DIR).

- voc: DIR/<image stem>.xml per image, 1-based inclusive pixels as the devkit and LabelImg write them (the exact
  inverse of the reader's conversion), classes by name; the XMLs beside copies of the images form a folder this
  repo reads (`--dataset VOC`, LabelImg's layout);
- yolo: DIR/<image stem>.txt per image (`class cx cy w h`, normalised to the image) and DIR/classes.txt, the names
  in class order, as LabelImg's YOLO mode writes them;
- coco: DIR/detections.coco.json, the COCO instances format (categories 1..C by name, bbox x, y, w, h in pixels,
  each detection's score kept beside it).
"""
import json
import os

import numpy as np

from utils.voc_eval import to_devkit

from .voc import annotation_xml

LABEL_FORMATS = ("voc", "yolo", "coco")


class LabelWriter:
    """`add(image_path, (height, width), boxes [k, 4] continuous pixel corners, labels [k], scores [k])` per image;
    `close()` writes what is kept to the end (COCO's one file) and returns the number of files written."""

    def __init__(self, kind: str, folder: str, class_names):
        if kind not in LABEL_FORMATS:
            raise ValueError(f"label format must be one of {LABEL_FORMATS}, got {kind!r}")
        self.kind, self.folder, self.class_names = kind, folder, list(class_names)
        os.makedirs(folder, exist_ok=True)
        self.written, self.coco = 0, {"images": [], "annotations": [], "categories": [
            {"id": k + 1, "name": name} for k, name in enumerate(self.class_names)]}

    def add(self, image_path: str, size: tuple, boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray):
        height, width = size
        stem, name = os.path.splitext(os.path.basename(image_path))[0], os.path.basename(image_path)
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if self.kind == "voc":
            objects = [(self.class_names[int(label)], *box) for box, label in zip(to_devkit(boxes), labels)]
            self._write(f"{stem}.xml", annotation_xml(name, width, height, objects, path=image_path))
        elif self.kind == "yolo":
            centre = (boxes[:, :2] + boxes[:, 2:]) / 2 / [width, height]
            extent = (boxes[:, 2:] - boxes[:, :2]) / [width, height]
            self._write(f"{stem}.txt", "".join(f"{int(label)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n" for label, (cx, cy),
                                               (w, h) in zip(labels, centre, extent)))
        else:
            image_id = len(self.coco["images"]) + 1
            self.coco["images"].append({"id": image_id, "file_name": name, "width": int(width),
                                        "height": int(height)})
            for box, label, score in zip(boxes, labels, scores):
                x, y, w, h = float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])
                self.coco["annotations"].append({"id": len(self.coco["annotations"]) + 1, "image_id": image_id,
                                                 "category_id": int(label) + 1, "bbox": [x, y, w, h],
                                                 "area": w * h, "iscrowd": 0, "score": float(score)})

    def close(self) -> int:
        if self.kind == "yolo":
            self._write("classes.txt", "".join(f"{name}\n" for name in self.class_names))
        elif self.kind == "coco":
            self._write("detections.coco.json", json.dumps(self.coco))
        return self.written

    def _write(self, name: str, text: str):
        with open(os.path.join(self.folder, name), "w") as f:
            f.write(text)
        self.written += 1
