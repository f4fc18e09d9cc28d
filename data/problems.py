"""What reading a dataset can go wrong with: the error that stops it, the counted problems (dropped or changed
boxes and files), box cleaning, and which format a folder holds."""
import logging
import os
from collections import Counter

import numpy as np

from utils.errors import UserError

log = logging.getLogger("ssd.data")
# the file names a YOLO-format folder's description goes by, in the order they are looked for
DATA_YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml")


class DatasetError(UserError):
    """A dataset that cannot be used at all (missing root, missing image set, empty set)."""


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
    """What a dataset dropped or changed while being read: per-file lines (for `python -m scripts.check_data`) and a
    count per kind (for the one-line summaries every run prints)."""

    def __init__(self):
        self.lines, self.counts, self.first = [], Counter(), {}

    def add(self, kind: str, line: str, count: int = 1):
        """`kind`: a short summary such as "objects of class 'dog' not in --class-names, dropped"."""
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
                        f"dataset_problems.txt, or `python -m scripts.check_data` with the same dataset flags)")

    def write(self, path: str, title: str):
        """Append every per-file line under `title` to `path`."""
        with open(path, "a") as f:
            f.write(f"# {title}: {len(self.lines)} problem(s)\n" + "".join(f"{line}\n" for line in self.lines))


def folder_format(root: str):
    """The annotation format a dataset folder holds, by its landmarks: "YOLO" (data.yaml), "COCO"
    (annotations/instances_*.json or Roboflow's */_annotations.coco.json), "VOC" (Annotations/ or a VOCdevkit), or
    None."""
    import glob
    if any(os.path.isfile(os.path.join(root, n)) for n in DATA_YAML_NAMES):
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
