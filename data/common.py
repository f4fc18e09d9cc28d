"""What every dataset shares: the annotation record, image decoding, and problem reporting."""
import logging
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

log = logging.getLogger("ssd.data")


class DatasetError(RuntimeError):
    """A dataset that cannot be used at all (missing root, missing image set, empty set)."""


@dataclass
class Record:
    """One image and its objects. Boxes: float32 [n, 4] continuous pixel corners (x1, y1, x2, y2)."""
    image_id: str
    image_path: str
    boxes: np.ndarray
    labels: np.ndarray  # int64 [n], 0..C-2
    difficult: np.ndarray  # bool [n]
    width: int = 0
    height: int = 0
    extra: dict = field(default_factory=dict)


def read_image(path: str) -> np.ndarray:
    """-> uint8 HxWx3 BGR. JPEG/PNG/BMP, grayscale, RGBA and CMYK all come out as 3-channel BGR.

    Raises ValueError naming the file when it is missing, empty or cannot be decoded.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read image ({exc.strerror})") from None
    if data.size == 0:
        raise ValueError(f"{path}: empty image file")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: corrupt or unsupported image")
    return image


def clean_boxes(boxes: np.ndarray, width: int, height: int, where: str, problems: list):
    """Clip boxes to the image and flag zero-area or inverted ones. -> bool mask of boxes to keep."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=bool)
    if width > 0 and height > 0:
        outside = (boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 2] > width) | (boxes[:, 3] > height)
        if outside.any():
            problems.append(f"{where}: {int(outside.sum())} box(es) outside the {width}x{height} image, clipped")
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if not keep.all():
        problems.append(f"{where}: {int((~keep).sum())} zero-area or inverted box(es) dropped")
    return keep


def report_problems(problems: list, name: str, shown: int = 10):
    """Log dataset problems: the first `shown` lines in full, then a count."""
    for line in problems[:shown]:
        log.warning(line)
    if len(problems) > shown:
        log.warning("%s: %d more problem(s); run `python -m data.check` for the full list", name,
                    len(problems) - shown)


def exists(path: str) -> bool:
    return os.path.isfile(path)


class RecordSource:
    """Base of the file-backed datasets: `records` parsed up front, images decoded on demand."""

    records: list
    class_names: list
    name: str

    def __len__(self):
        return len(self.records)

    def image_id(self, index: int) -> str:
        return self.records[index].image_id

    def annotation(self, index: int):
        """-> boxes [n, 4] float32 (pixel corners), labels [n] int64, difficult [n] bool."""
        r = self.records[index]
        return r.boxes, r.labels, r.difficult

    def load(self, index: int):
        """-> image uint8 HxWx3 BGR, boxes, labels, difficult. ValueError (naming the file) if it cannot be read."""
        r = self.records[index]
        image = read_image(r.image_path)
        boxes = r.boxes
        height, width = image.shape[:2]
        if (r.width, r.height) != (width, height) and len(boxes):
            # the annotation's <size> was wrong or missing: clip to the real image (data.check reports it)
            boxes = boxes.copy()
            keep = clean_boxes(boxes, width, height, r.image_path, [])
            return image, boxes[keep], r.labels[keep], r.difficult[keep]
        return image, boxes, r.labels, r.difficult
