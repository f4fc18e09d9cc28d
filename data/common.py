"""What every dataset shares: the annotation table, image decoding, and problem reporting."""
import io
import logging
import os
from collections import Counter
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

log = logging.getLogger("ssd.data")


class DatasetError(RuntimeError):
    """A dataset that cannot be used at all (missing root, missing image set, empty set)."""


class RecordTable:
    """The annotations of a whole dataset in a few flat numpy arrays, not one Python object per image: the pages
    DataLoader workers inherit are never written by a garbage collection, so they stay shared (PyTorch's "memory
    grows in the workers" problem). Boxes are float32 continuous pixel corners (x1, y1, x2, y2); image i owns
    rows offsets[i]:offsets[i + 1] of boxes, labels (int64, 0..C-2) and difficult (bool)."""

    def __init__(self, image_ids, image_paths, sizes, offsets, boxes, labels, difficult, coco_ids=None):
        self.image_ids = np.asarray(image_ids, dtype=str)
        self.image_paths = np.asarray(image_paths, dtype=str)
        self.sizes = np.asarray(sizes, dtype=np.int32).reshape(-1, 2)  # (width, height) as annotated, 0 = unknown
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

    def add(self, image_id: str, path: str, boxes, labels, difficult, width: int = 0, height: int = 0):
        self.ids.append(image_id)
        self.paths.append(path)
        self.sizes.append((width, height))
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


# Transparent pixels are composited on this background (BGR): what an image viewer shows, and what the
# annotator saw when drawing the boxes.
ALPHA_BACKGROUND = (255, 255, 255)


class DecodedImage(NamedTuple):
    image: np.ndarray  # uint8 HxWx3 BGR, the way up a viewer shows it
    had_alpha: bool  # transparent pixels were composited on ALPHA_BACKGROUND
    orientation: int  # the EXIF orientation applied (1: none)


# EXIF orientation -> the cv2 operations that turn the stored pixels the way up viewers show them
ORIENTATIONS = {2: lambda im: cv2.flip(im, 1), 3: lambda im: cv2.rotate(im, cv2.ROTATE_180),
                4: lambda im: cv2.flip(im, 0), 5: lambda im: cv2.transpose(im),
                6: lambda im: cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE),
                7: lambda im: cv2.rotate(cv2.transpose(im), cv2.ROTATE_180),
                8: lambda im: cv2.rotate(im, cv2.ROTATE_90_COUNTERCLOCKWISE)}


def exif_orientation(data: np.ndarray) -> int:
    """The EXIF Orientation tag of an encoded image (uint8 bytes; 1 when it has none), read from its header."""
    head = data[:65536].tobytes()
    if not (b"Exif" in head or b"eXIf" in head or b"EXIF" in head or head[:4] in (b"II*\x00", b"MM\x00*")):
        return 1
    try:
        with Image.open(io.BytesIO(data.tobytes())) as image:
            orientation = image.getexif().get(0x0112, 1)
    except Exception:  # PIL raises many kinds on odd headers; cv2 decodes the pixels either way
        return 1
    return orientation if orientation in ORIENTATIONS else 1


def decode_image(path: str) -> DecodedImage:
    """JPEG/PNG/BMP/WebP/TIFF, grayscale, 16-bit, palette and CMYK come out as 3-channel BGR; transparent pixels are
    composited on ALPHA_BACKGROUND; the EXIF orientation is applied (every viewer and annotation tool shows the photo
    that way up, and its boxes are drawn on that view); a truncated JPEG decodes as far as it goes, as cv2.imread and
    PIL do. Raises ValueError naming the file when it is missing, empty or undecodable."""
    image, had_alpha, data = _decode_pixels(path)
    orientation = exif_orientation(data)
    if orientation != 1:
        image = np.ascontiguousarray(ORIENTATIONS[orientation](image))
    return DecodedImage(image, had_alpha, orientation)


def _decode_pixels(path: str) -> tuple:
    """-> (uint8 HxWx3 BGR as stored, had_alpha, the file's bytes)."""
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
        return np.round(colour * alpha + background * (1 - alpha)).astype(np.uint8), True, data
    if image.ndim == 2 or image.dtype != np.uint8 or image.shape[2] != 3:  # gray, 16-bit, CMYK: as cv2 converts
        flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION  # applied once, in decode_image
        colour = cv2.imdecode(data, flags)
        image = colour if colour is not None else cv2.imread(path, flags)
        if image is None:
            raise ValueError(f"{path}: corrupt or unsupported image")
    return image, False, data


def jpeg_truncated(path: str) -> bool:
    """A JPEG file without its end-of-image marker (FF D9): cut short, decoded only as far as it goes."""
    with open(path, "rb") as f:
        if f.read(2) != b"\xff\xd8":
            return False
        size = os.path.getsize(path)
        tail = b""
        while size > 2:  # padding after the end marker (zeros, newlines: some cameras and tools write kilobytes)
            step = min(size - 2, 65536)
            f.seek(size - step)
            tail = f.read(step) + tail
            size -= step
            if len(tail.rstrip(b"\x00\r\n ")) >= 2:
                break
        return not tail.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")


def image_header_size(path: str) -> tuple:
    """(width, height) from the image file's header without decoding it; (0, 0) when it cannot be read."""
    try:
        with Image.open(path) as image:
            turned = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # decode_image turns these by 90 degrees
            return image.size[::-1] if turned else image.size
    except Exception:  # PIL raises many kinds on odd headers
        return 0, 0


PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def image_files(folder: str) -> list:
    """The image files of `folder` (by extension, any case), sorted; [] when there are none."""
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if os.path.splitext(name)[1].lower() in PHOTO_EXTENSIONS)


def read_image(path: str) -> np.ndarray:
    """-> uint8 HxWx3 BGR, the way up a viewer shows it (see `decode_image`)."""
    return decode_image(path).image


def clean_boxes(boxes: np.ndarray, width: int, height: int, where: str, problems: "Problems" = None):
    """Clip boxes to the image and flag zero-area or inverted ones. -> bool mask of boxes to keep. Boxes past the
    edge by half a pixel or less (annotation tools' rounding) are clamped with a count, not reported as problems;
    a box wholly outside the image is counted once, as such."""
    problems = Problems() if problems is None else problems
    if len(boxes) == 0:
        return np.zeros(0, dtype=bool)
    outside = np.zeros(len(boxes), bool)
    if width > 0 and height > 0:
        excess = np.max(np.stack([-boxes[:, 0], -boxes[:, 1], boxes[:, 2] - width, boxes[:, 3] - height]), axis=0)
        outside, rounding = excess > 0.5, (excess > 0) & (excess <= 0.5)
        if rounding.any():
            problems.note("boxes past the image edge by half a pixel or less (rounding), clamped",
                          int(rounding.sum()))
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    for mask, kind, text in ((outside & keep, "boxes past the image edge, clipped",
                              f"box(es) outside the {width}x{height} image, clipped"),
                             (outside & ~keep, "boxes wholly outside the image, dropped",
                              f"box(es) wholly outside the {width}x{height} image, dropped"),
                             (~outside & ~keep, "zero-area or inverted boxes, dropped",
                              "zero-area or inverted box(es) dropped")):
        if mask.any():
            problems.add(kind, f"{where}: {int(mask.sum())} {text}", int(mask.sum()))
    return keep


class Problems:
    """What a dataset dropped or changed while being read: per-file lines (for `python -m data.check`) and a
    count per kind (for the one-line summaries every run prints)."""

    def __init__(self):
        self.lines, self.counts, self.first = [], Counter(), {}

    def add(self, kind: str, line: str, count: int = 1):
        """`kind`: a short summary such as "objects of class 'dog' not in --labels, dropped"."""
        self.add_many(kind, [line], count)

    def add_many(self, kind: str, lines: list, count: int):
        self.lines.extend(lines)
        self.counts[kind] += count
        if lines:
            self.first.setdefault(kind, lines[0])

    def note(self, kind: str, count: int = 1):
        """Something changed on purpose that is not a problem of the data (a count in the summary, no file line)."""
        self.counts[kind] += count

    def dominant(self) -> str:
        """The kind of problem with the largest count, with its count and first file: why a set came out empty."""
        kind, count = max(((k, c) for k, c in self.counts.items() if k in self.first), key=lambda kc: kc[1])
        return f"{count} {kind}, first: {self.first[kind]}"

    def __len__(self):
        return len(self.lines)

    def __iter__(self):
        return iter(self.lines)

    def summary(self) -> list:
        return [f"{count} {kind}" for kind, count in self.counts.most_common()]

    def report(self, name: str, shown: int = 3):
        """One warning per kind of problem with its count, the first `shown` files, and where the rest is."""
        for line in self.summary():
            log.warning("%s: %s", name, line)
        if self.lines:
            log.warning("%s: first problem(s): %s%s", name, " | ".join(self.lines[:shown]),
                        "" if len(self.lines) <= shown else f" (+{len(self.lines) - shown} more: the run folder's "
                        f"dataset_problems.txt, or `python -m data.check` with the same dataset flags)")

    def write(self, path: str, title: str):
        """Append every per-file line under `title` to `path`."""
        with open(path, "a") as f:
            f.write(f"# {title}: {len(self.lines)} problem(s)\n" + "".join(f"{line}\n" for line in self.lines))


def folder_format(root: str):
    """The annotation format a dataset folder holds, by its landmarks: "YOLO" (data.yaml), "COCO"
    (annotations/instances_*.json or Roboflow's */_annotations.coco.json), "VOC" (Annotations/ or a VOCdevkit), or
    None."""
    import glob
    if any(os.path.isfile(os.path.join(root, n)) for n in ("data.yaml", "data.yml", "dataset.yaml")):
        return "YOLO"
    if glob.glob(os.path.join(glob.escape(root), "annotations", "instances_*.json")) or \
            glob.glob(os.path.join(glob.escape(root), "*", "_annotations.coco.json")):
        return "COCO"
    if os.path.isdir(os.path.join(root, "Annotations")) or glob.glob(os.path.join(glob.escape(root), "VOC20*")):
        return "VOC"
    return None


def format_hint(root: str, dataset: str) -> str:
    """'; it looks like a YOLO-format folder: use --dataset YOLO' when `root` holds another format than `dataset`."""
    found = folder_format(root)
    kind = {"VOC": "VOC-style", "COCO": "COCO-format", "YOLO": "YOLO-format"}.get(found)
    return f"; {root} looks like a {kind} folder: use --dataset {found}" if found and found != dataset else ""


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
        """(width, height) as the annotation gives it; (0, 0) when it gives none."""
        width, height = self.table.sizes[index].tolist()
        return width, height

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
        if self.image_size(index) != (width, height) and len(boxes):
            # the annotation's <size> was wrong or missing: clip to the real image (data.check reports it)
            boxes = boxes.copy()
            keep = clean_boxes(boxes, width, height, path)
            return image, boxes[keep], labels[keep], difficult[keep]
        return image, boxes, labels, difficult
