"""The annotations of a dataset as a few flat arrays (RecordTable, built by TableBuilder), and RecordSource, the
base of the file-backed datasets (VOC, COCO, YOLO) that serves them by index."""
import os
from collections import Counter
from typing import Protocol

import numpy as np

from .images import read_image
from .problems import DatasetError, Problems, clean_boxes, log


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


class DataSource(Protocol):
    """What training, evaluation and the checker read of a dataset. RecordSource (VOC, COCO and YOLO folders) and
    data.shapes.ShapesDataset implement it."""
    name: str
    class_names: list
    problems: Problems  # what reading dropped or changed, counted per kind
    names_found: Counter  # every object name the annotations hold, of --class-names or not
    notices: list  # what is worth a line without being a problem (categories merged, size mismatches)
    layout: object  # the folder layout found (data.voc.VocLayout), or None
    table: RecordTable | None  # the parsed annotations; None for a generated set

    def __len__(self) -> int: ...
    def image_id(self, index: int) -> str: ...
    def image_path(self, index: int) -> str: ...
    def image_size(self, index: int) -> tuple: ...
    def annotation(self, index: int) -> tuple: ...
    def load(self, index: int) -> tuple: ...


class RecordSource:
    """Base of the file-backed datasets (a DataSource): a RecordTable parsed up front, images decoded on demand."""

    table: RecordTable
    class_names: list
    name: str
    notices: list = ()
    layout = None

    def __len__(self):
        return len(self.table)

    def finish_reading(self, name: str, what: str, image_sets):
        """After the table is built: what was dropped, one line per kind; a DatasetError when no image is usable;
        then what was read."""
        self.problems.report(name)
        if not len(self.table):
            raise DatasetError(f"{self.root}: {what} {list(image_sets)} hold no usable image"
                               + (f" ({self.problems.dominant()})" if self.problems else ""))
        log.info("%s %s: %d images, %d objects of %d classes: %s", name, list(image_sets), len(self.table),
                 len(self.table.labels), len(self.class_names), ", ".join(self.class_names))

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
