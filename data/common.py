"""What every dataset shares: the annotation record, image decoding, and problem reporting."""
import logging
import os
from collections import Counter
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


# Transparent pixels are composited on this background (BGR): what an image viewer shows, and what the
# annotator saw when drawing the boxes.
ALPHA_BACKGROUND = (255, 255, 255)


def decode_image(path: str):
    """-> (uint8 HxWx3 BGR, had_alpha). JPEG/PNG/BMP/WebP/TIFF, grayscale, 16-bit, palette and CMYK come out as
    3-channel BGR; transparent pixels are composited on ALPHA_BACKGROUND; a truncated JPEG decodes as far as it
    goes, as cv2.imread and PIL do. Raises ValueError naming the file when it is missing, empty or undecodable."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read image ({exc.strerror})") from None
    if data.size == 0:
        raise ValueError(f"{path}: empty image file")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None and os.path.isfile(path):  # imdecode refuses truncated JPEGs that imread decodes
        image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: corrupt or unsupported image")
    if image.ndim == 3 and image.shape[2] == 4 and data[:2].tobytes() != b"\xff\xd8":  # alpha (not CMYK JPEG)
        scale = 65535.0 if image.dtype == np.uint16 else 255.0
        alpha = image[..., 3:].astype(np.float32) / scale
        colour = image[..., :3].astype(np.float32) * (255.0 / scale)
        background = np.array(ALPHA_BACKGROUND, np.float32)
        return np.round(colour * alpha + background * (1 - alpha)).astype(np.uint8), True
    if image.ndim == 2 or image.dtype != np.uint8 or image.shape[2] != 3:  # gray, 16-bit, CMYK: as cv2 converts
        colour = cv2.imdecode(data, cv2.IMREAD_COLOR)
        image = colour if colour is not None else cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{path}: corrupt or unsupported image")
    return image, False


def read_image(path: str) -> np.ndarray:
    """-> uint8 HxWx3 BGR (see `decode_image`)."""
    return decode_image(path)[0]


def clean_boxes(boxes: np.ndarray, width: int, height: int, where: str, problems: "Problems" = None):
    """Clip boxes to the image and flag zero-area or inverted ones. -> bool mask of boxes to keep."""
    problems = Problems() if problems is None else problems
    if len(boxes) == 0:
        return np.zeros(0, dtype=bool)
    if width > 0 and height > 0:
        outside = (boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 2] > width) | (boxes[:, 3] > height)
        if outside.any():
            problems.add("boxes past the image edge, clipped",
                         f"{where}: {int(outside.sum())} box(es) outside the {width}x{height} image, clipped",
                         int(outside.sum()))
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if not keep.all():
        problems.add("zero-area or inverted boxes, dropped",
                     f"{where}: {int((~keep).sum())} zero-area or inverted box(es) dropped", int((~keep).sum()))
    return keep


class Problems:
    """What a dataset dropped or changed while being read: per-file lines (for `python -m data.check`) and a
    count per kind (for the one-line summaries every run prints)."""

    def __init__(self):
        self.lines, self.counts = [], Counter()

    def add(self, kind: str, line: str, count: int = 1):
        """`kind`: a short summary such as "objects of class 'dog' not in --labels, dropped"."""
        self.lines.append(line)
        self.counts[kind] += count

    def __len__(self):
        return len(self.lines)

    def __iter__(self):
        return iter(self.lines)

    def summary(self) -> list:
        return [f"{count} {kind}" for kind, count in self.counts.most_common()]

    def report(self, name: str):
        for line in self.summary():
            log.warning("%s: %s", name, line)
        if self.lines:
            log.warning("%s: per-file details: `python -m data.check` with the same dataset flags", name)


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

    def image_path(self, index: int) -> str:
        return self.records[index].image_path

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
            keep = clean_boxes(boxes, width, height, r.image_path)
            return image, boxes[keep], r.labels[keep], r.difficult[keep]
        return image, boxes, r.labels, r.difficult
