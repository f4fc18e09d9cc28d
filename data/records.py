"""The annotations of a dataset as a few flat arrays (RecordTable, built by TableBuilder), and RecordSource, the
base of the file-backed datasets (VOC, COCO, YOLO) that serves them by index."""
import os

import numpy as np

from .images import read_image
from .problems import clean_boxes


class RecordTable:
    """The annotations of a whole dataset in a few flat numpy arrays, not one Python object per image: the pages
    DataLoader workers inherit are never written by a garbage collection, so they stay shared (PyTorch's "memory
    grows in the workers" problem). Boxes are float32 continuous pixel corners (x1, y1, x2, y2); image i owns
    rows offsets[i]:offsets[i + 1] of boxes, labels (int64, 0..C-2) and difficult (bool)."""

    def __init__(self, image_ids, image_paths, sizes, offsets, boxes, labels, difficult, coco_ids=None):
        self.image_ids = np.asarray(image_ids, dtype=str)
        self.image_paths = np.asarray(image_paths, dtype=str)
        self.sizes = np.asarray(sizes, dtype=np.int32).reshape(-1, 2)  # (height, width) as annotated, 0 = unknown
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.difficult = np.asarray(difficult, dtype=bool)
        self.coco_ids = None if coco_ids is None else np.asarray(coco_ids, dtype=np.int64)

    def __len__(self):
        return len(self.image_ids)

    def objects(self, index: int) -> slice:
        return slice(int(self.offsets[index]), int(self.offsets[index + 1]))


class TableBuilder:
    """Collects images one by one (while parsing), then packs them into a RecordTable."""

    def __init__(self):
        self.ids, self.paths, self.sizes, self.counts, self.boxes, self.labels, self.difficult = ([] for _ in range(7))

    def add(self, image_id: str, path: str, boxes, labels, difficult, height: int = 0, width: int = 0):
        self.ids.append(image_id)
        self.paths.append(path)
        self.sizes.append((height, width))
        self.counts.append(len(labels))
        self.boxes.append(np.asarray(boxes, np.float32).reshape(-1, 4))
        self.labels.append(np.asarray(labels, np.int64))
        self.difficult.append(np.asarray(difficult, bool))

    def __len__(self):
        return len(self.ids)

    def build(self) -> RecordTable:
        offsets = np.concatenate([[0], np.cumsum(self.counts, dtype=np.int64)])
        def stack(parts, empty):
            return np.concatenate(parts) if parts else empty
        return RecordTable(self.ids, self.paths, np.array(self.sizes, np.int32).reshape(-1, 2), offsets,
                           stack(self.boxes, np.zeros((0, 4), np.float32)), stack(self.labels, np.zeros(0, np.int64)),
                           stack(self.difficult, np.zeros(0, bool)))


def exists(path: str) -> bool:
    return os.path.isfile(path)


class RecordSource:
    """Base of the file-backed datasets: a RecordTable parsed up front, images decoded on demand."""

    table: RecordTable
    class_names: list
    name: str

    def __len__(self):
        return len(self.table)

    def image_id(self, index: int) -> str:
        return str(self.table.image_ids[index])

    def image_path(self, index: int) -> str:
        return str(self.table.image_paths[index])

    def image_size(self, index: int) -> tuple:
        """(height, width) as the annotation gives it; (0, 0) when it gives none."""
        height, width = self.table.sizes[index].tolist()
        return height, width

    def annotation(self, index: int):
        """-> boxes [n, 4] float32 (pixel corners), labels [n] int64, difficult [n] bool."""
        rows = self.table.objects(index)
        return self.table.boxes[rows], self.table.labels[rows], self.table.difficult[rows]

    def load(self, index: int):
        """-> image uint8 HxWx3 BGR, boxes, labels, difficult. ValueError (naming the file) if it cannot be read."""
        path = self.image_path(index)
        image = read_image(path)
        boxes, labels, difficult = self.annotation(index)
        height, width = image.shape[:2]
        if self.image_size(index) != (height, width) and len(boxes):
            # the annotation's <size> was wrong or missing: clip to the real image (scripts.check_data reports it)
            boxes = boxes.copy()
            keep = clean_boxes(boxes, width, height, path)
            return image, boxes[keep], labels[keep], difficult[keep]
        return image, boxes, labels, difficult
