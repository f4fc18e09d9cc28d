"""The built-in synthetic dataset: filled shapes on textured backgrounds, generated on the fly from a seed.

Every image is a pure function of (seed, split, index), so a split needs no files, any worker can make any
image, and runs are reproducible. Objects have random colour, size and aspect, 1-6 per image, and may be partly
occluded by later ones (at most half of an object is hidden). Boxes are the tight pixel bounds of each shape.
`python scripts/make_shapes_voc.py` writes a split out as a VOC-style folder.
"""
import functools
from collections import Counter

import cv2
import numpy as np

from config import SHAPES_CLASSES

from .problems import Problems

SPLIT_IDS = {"train": 0, "test": 1, "val": 2}


def _shape_mask(cls: str, height: int, width: int, box) -> np.ndarray:
    x1, y1, x2, y2 = box
    mask = np.zeros((height, width), np.uint8)
    w, h = x2 - x1, y2 - y1
    if cls == "ellipse":
        cv2.ellipse(mask, (((x1 + x2 - 1) / 2, (y1 + y2 - 1) / 2), (w - 1, h - 1), 0), 1, -1)
    elif cls == "rectangle":
        cv2.rectangle(mask, (x1, y1), (x2 - 1, y2 - 1), 1, -1)
    elif cls == "triangle":
        cv2.fillPoly(mask, [np.array([[x1, y2 - 1], [x2 - 1, y2 - 1], [(x1 + x2) // 2, y1]], np.int32)], 1)
    elif cls == "star":
        angles = np.pi / 2 + np.arange(10) * np.pi / 5
        radius = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        xs = (np.cos(angles) * radius + 1) / 2 * (w - 1) + x1
        ys = (1 - (np.sin(angles) * radius + 1) / 2) * (h - 1) + y1
        cv2.fillPoly(mask, [np.round(np.stack([xs, ys], 1)).astype(np.int32)], 1)
    elif cls == "cross":
        tw, th = max(w // 3, 1), max(h // 3, 1)
        cv2.rectangle(mask, (x1, y1 + th), (x2 - 1, y2 - 1 - th), 1, -1)
        cv2.rectangle(mask, (x1 + tw, y1), (x2 - 1 - tw, y2 - 1), 1, -1)
    return mask.astype(bool)


@functools.lru_cache(maxsize=1)
def _noise_tile() -> np.ndarray:
    """Fixed unit Gaussian noise; each image takes a random window of it (far cheaper than fresh noise)."""
    return np.random.default_rng(2016).standard_normal((768, 768, 3), dtype=np.float32)


def _background(rng, height, width) -> np.ndarray:
    coarse = rng.uniform(0, 255, (rng.integers(2, 8), rng.integers(2, 8), 3)).astype(np.float32)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    top, left = int(rng.integers(0, 768 - height + 1)), int(rng.integers(0, 768 - width + 1))
    image += _noise_tile()[top:top + height, left:left + width] * np.float32(rng.uniform(4, 20))
    for _ in range(rng.integers(0, 6)):  # clutter lines
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(image, p1, p2, rng.uniform(0, 255, 3).tolist(), int(rng.integers(1, 4)))
    return image


def generate(seed: int, split: str, index: int, class_names=SHAPES_CLASSES):
    """-> image uint8 HxWx3 BGR, boxes float32 [n, 4] pixel corners, labels int64 [n]."""
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index])
    height, width = int(rng.integers(256, 385)), int(rng.integers(256, 385))
    image = _background(rng, height, width)
    owner = np.full((height, width), -1, np.int32)  # which object is visible at each pixel
    areas, visible, boxes, labels = [], [], [], []  # visible: pixels of each object not covered by later ones
    for _ in range(rng.integers(1, 7)):
        for _attempt in range(10):
            cls = int(rng.integers(len(class_names)))
            side = rng.uniform(0.12, 0.55) * min(height, width)
            aspect = rng.uniform(0.5, 2.0)
            w, h = max(int(side * np.sqrt(aspect)), 12), max(int(side / np.sqrt(aspect)), 12)
            w, h = min(w, width), min(h, height)
            x1, y1 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            mask = _shape_mask(class_names[cls], height, width, (x1, y1, x1 + w, y1 + h))
            under = owner[mask]
            covered = np.bincount(under[under >= 0], minlength=len(areas))
            if all(visible[j] - covered[j] >= 0.5 * areas[j] for j in range(len(areas))):
                break
        else:
            continue
        count = int(mask.sum())
        image[mask] = rng.uniform(0, 255, 3) + rng.normal(0, rng.uniform(2, 12), (count, 3))
        owner[mask] = len(areas)
        visible = [v - c for v, c in zip(visible, covered)] + [count]
        areas.append(count)
        cols, rows = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
        boxes.append((cols[0], rows[0], cols[-1] + 1, rows[-1] + 1))
        labels.append(cls)
    image = np.clip(image, 0, 255).astype(np.uint8)
    return image, np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64)


class ShapesDataset:
    """`ShapesDataset('train' | 'test', num_images, seed)`: a DataSource, as the file datasets, generated."""

    table = None  # nothing parsed: every image holds objects of every class's kind
    notices = ()
    layout = None

    def __init__(self, split: str = "train", num_images: int = 20000, seed: int = 0):
        if split not in SPLIT_IDS:
            raise ValueError(f"shapes split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
        self.split, self.num_images, self.seed = split, num_images, seed
        self.class_names = list(SHAPES_CLASSES)
        self.name = f"shapes:{split}"
        self.problems, self.names_found = Problems(), Counter()
        self._cached = functools.lru_cache(maxsize=4096)(self._generate)  # test images are read many times

    def __len__(self):
        return self.num_images

    def image_id(self, index: int) -> str:
        return f"{self.split}_{index:06d}"

    def image_path(self, index: int) -> str:
        return f"shapes:{self.image_id(index)}"

    def _generate(self, index: int):
        return generate(self.seed, self.split, index, self.class_names)

    def load(self, index: int):
        image, boxes, labels = self._cached(index) if self.split != "train" else self._generate(index)
        return image, boxes, labels, np.zeros(len(labels), bool)

    def annotation(self, index: int):
        _, boxes, labels, difficult = self.load(index)
        return boxes, labels, difficult

    def image_size(self, index: int) -> tuple:
        """(height, width) of the generated image."""
        return tuple(self.load(index)[0].shape[:2])
