"""YOLO-format folders: the Ultralytics layout that Roboflow, Label Studio and CVAT export.

    ROOT/data.yaml        names: [a, b, ...] (or {0: a, 1: b}); train: images/train; val: ...; test: ... (optional)
    ROOT/images/<split>/  the images
    ROOT/labels/<split>/  one <image stem>.txt per image: `class cx cy w h` per line, normalised to [0, 1]

A split's path in data.yaml is relative to its `path:` key (else to the yaml's folder); Roboflow's `../train/images`
is read as `train/images` under the root when the literal path does not exist. It may also be a .txt file listing
image paths, or a list of either. The labels of an image are found by replacing the last `images` folder of its
path with `labels`, as Ultralytics does. Sets are the yaml's keys: --sets train, --test-sets val (or test).

Counted, never silent: a line with another field count (a polygon line `class x1 y1 x2 y2 ...` is read as its
bounding box, counted), a class id outside `names`, boxes reaching outside the image (clipped; by half a pixel or
less: rounding, clamped), zero-area boxes, an
image without a label file (an image without objects: skipped for training, kept for evaluation), a label file
without an image. Classes: every name of data.yaml by default; --class-names selects and orders them by name.
"""
import os
from collections import Counter

import numpy as np

from .images import PHOTO_EXTENSIONS, image_header_size
from .problems import DATA_YAML_NAMES, DatasetError, Problems, clean_boxes, format_hint
from .records import RecordSource, TableBuilder

SET_ALIASES = {"valid": "val", "validation": "val"}


def read_data_yaml(root: str) -> tuple:
    """-> (the yaml's path, its contents as a dict). `root`: the folder holding data.yaml, or that file itself (as
    Ultralytics' `data=` takes it)."""
    import yaml

    names = [os.path.basename(root)] if os.path.isfile(root) else DATA_YAML_NAMES
    folder = os.path.dirname(root) if os.path.isfile(root) else root
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            break
    else:
        raise DatasetError(f"{root}: no data.yaml; a YOLO-format folder holds data.yaml (names, train/val paths), "
                           f"images/<split>/ and labels/<split>/{format_hint(root, 'YOLO')}")
    try:
        with open(path, encoding="utf-8-sig") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as exc:
        raise DatasetError(f"{path}: cannot be read as YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict) or "names" not in doc:
        raise DatasetError(f"{path}: needs a 'names' entry (the class names, a list or {{id: name}})")
    return path, doc


def class_names_of(names, path: str) -> list:
    if isinstance(names, dict):
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise DatasetError(f"{path}: 'names' keys must be class ids 0..N-1") from None
        if ids != list(range(len(ids))):
            raise DatasetError(f"{path}: 'names' ids must be 0..{len(ids) - 1}, got {ids}")
        return [str(names[k] if k in names else names[str(k)]) for k in ids]
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    raise DatasetError(f"{path}: 'names' must be a non-empty list or {{id: name}} mapping")


def label_path(image_path: str) -> str:
    """Ultralytics' rule: the last `images` folder of the path becomes `labels`, the extension `.txt`."""
    marker = f"{os.sep}images{os.sep}"
    if marker in image_path:
        head, _, tail = image_path.rpartition(marker)
        image_path = f"{head}{os.sep}labels{os.sep}{tail}"
    return os.path.splitext(image_path)[0] + ".txt"


class YOLOSource(RecordSource):
    def __init__(self, root: str, image_sets, class_names=None, skip_empty: bool = True, name: str = "YOLO"):
        """`class_names`: class names to keep, in label order (None or empty: every name of data.yaml)."""
        self.root = os.path.expanduser(root)
        self.name = name
        self.problems, self.names_found, self.notices = Problems(), Counter(), []
        if not os.path.isdir(self.root) and not self.root.endswith((".yaml", ".yml")):
            raise DatasetError(f"{self.root}: dataset root not found (see docs/data.md)")
        if not os.path.exists(self.root):
            raise DatasetError(f"{self.root}: no such file")
        self.yaml_path, doc = read_data_yaml(self.root)
        names = class_names_of(doc["names"], self.yaml_path)
        if class_names:
            missing = [n for n in class_names if n not in names]
            if missing:
                raise DatasetError(f"{self.yaml_path}: no class named {missing}; its names: {', '.join(names)}")
            self.class_names = list(class_names)
        else:
            self.class_names = names
        label_of = np.array([self.class_names.index(n) if n in self.class_names else -1 for n in names])
        base = os.path.join(os.path.dirname(self.yaml_path), str(doc.get("path") or ""))
        builder = TableBuilder()
        for image_set in [image_sets] if isinstance(image_sets, str) else image_sets:
            key = SET_ALIASES.get(image_set, image_set)
            if not doc.get(key):
                splits = [k for k in ("train", "val", "test") if doc.get(k)]
                raise DatasetError(f"{self.yaml_path}: no '{key}' split (it lists: {', '.join(splits) or 'none'}); "
                                   f"choose --sets / --test-sets among them")
            for path in self._images(doc[key], base, key):
                self._add(builder, path, names, label_of, skip_empty)
            self._orphans(doc[key], base)
        self.table = builder.build()
        self.finish_reading(name, "YOLO split(s)", image_sets)

    def _split_paths(self, entry, base: str, key: str) -> list:
        """data.yaml's entry for a split -> existing folders or list files."""
        found = []
        for item in entry if isinstance(entry, list) else [entry]:
            path = os.path.normpath(os.path.join(base, str(item)))
            if not os.path.exists(path):  # Roboflow: ../train/images beside data.yaml means ROOT/train/images
                stripped = str(item)
                while stripped.startswith("../"):
                    stripped = stripped[3:]
                path = os.path.normpath(os.path.join(os.path.dirname(self.yaml_path), stripped))
                if not os.path.exists(path):
                    raise DatasetError(f"{self.yaml_path}: split '{key}' path {item} not found (looked in "
                                       f"{os.path.normpath(os.path.join(base, str(item)))} and {path})")
                self.problems.note(f"split paths of data.yaml read under the root ({item} as {stripped})")
            found.append(path)
        return found

    def _images(self, entry, base: str, key: str) -> list:
        images = []
        for path in self._split_paths(entry, base, key):
            if os.path.isdir(path):
                for folder, _, files in sorted(os.walk(path)):
                    images += [os.path.join(folder, f) for f in sorted(files)
                               if os.path.splitext(f)[1].lower() in PHOTO_EXTENSIONS]
            else:  # a list file of image paths, relative to the yaml's folder
                with open(path, encoding="utf-8-sig") as f:  # a BOM (Notepad) is not part of the first path
                    listed = [line.strip() for line in f if line.strip()]
                images += [os.path.normpath(os.path.join(os.path.dirname(self.yaml_path), p)) for p in listed]
        return images

    def _orphans(self, entry, base: str):
        """Label files without an image, counted."""
        for path in self._split_paths(entry, base, "?"):
            if not os.path.isdir(path):
                continue
            stems = {os.path.splitext(os.path.join(folder, f))[0] for folder, _, files in os.walk(path)
                     for f in files if os.path.splitext(f)[1].lower() in PHOTO_EXTENSIONS}
            labels_dir = os.path.dirname(label_path(os.path.join(path, "x.jpg")))
            if not os.path.isdir(labels_dir) or labels_dir == path:
                continue
            for folder, _, files in os.walk(labels_dir):
                for f in files:
                    if not f.endswith(".txt"):
                        continue
                    stem = os.path.splitext(os.path.join(folder, f))[0]
                    image_stem = os.path.join(path, os.path.relpath(stem, labels_dir))
                    if image_stem not in stems:
                        self.problems.add("label files without an image, ignored",
                                          f"{os.path.join(folder, f)}: no image of that name in {path}, ignored")

    def _add(self, builder: TableBuilder, image_path: str, names: list, label_of: np.ndarray, skip_empty: bool):
        if not os.path.isfile(image_path):
            self.problems.add("listed images not found, skipped", f"{image_path}: listed image not found, skipped")
            return
        text_path = label_path(image_path)
        rows = []
        if not os.path.isfile(text_path):
            self.problems.note("images without a label file (images without objects"
                               + (", skipped for training)" if skip_empty else ")"))
        else:
            with open(text_path, encoding="utf-8-sig", errors="replace") as f:
                lines = [line.split() for line in f if line.strip()]
            for number, fields in enumerate(lines, 1):
                row = self._parse(fields, text_path, number, len(names))
                if row is not None:
                    rows.append(row)
        height, width = image_header_size(image_path)
        if width <= 0 or height <= 0:
            self.problems.add("unreadable images, skipped", f"{image_path}: cannot read the image size, skipped")
            return
        rows = np.array(rows, np.float64).reshape(-1, 5)
        classes = rows[:, 0].astype(np.int64)
        self.names_found.update(names[c] for c in classes.tolist())
        unwanted = label_of[classes] < 0
        for c, count in Counter(classes[unwanted].tolist()).items():
            self.problems.add(f"objects of class '{names[c]}' not in --class-names, dropped",
                              f"{text_path}: {count} object(s) of class '{names[c]}' not in --class-names, dropped",
                              count)
        rows, classes = rows[~unwanted], classes[~unwanted]
        xy = rows[:, 1:] * np.array([width, height, width, height])
        boxes = np.concatenate([xy[:, :2] - xy[:, 2:] / 2, xy[:, :2] + xy[:, 2:] / 2], 1)
        # an edge at 0 or 1 written with a few decimals lands a hair outside: not a box past the edge
        limit = np.array([width, height, width, height])
        boxes = np.where(np.abs(boxes) < 1e-3, 0, np.where(np.abs(boxes - limit) < 1e-3, limit, boxes))
        boxes = boxes.astype(np.float32)
        keep = clean_boxes(boxes, width, height, text_path, self.problems)
        labels = label_of[classes][keep]
        if skip_empty and len(labels) == 0:
            if os.path.isfile(text_path):
                self.problems.note("images without any object of --class-names, skipped for training")
            return
        root = os.path.dirname(self.yaml_path)
        builder.add(os.path.splitext(os.path.relpath(image_path, root))[0], image_path, boxes[keep], labels,
                    np.zeros(len(labels), bool), height, width)

    def _parse(self, fields: list, path: str, number: int, classes: int):
        """One label line -> [class, cx, cy, w, h] or None (counted)."""
        try:
            values = [float(v) for v in fields]
        except ValueError:
            self.problems.add("label lines that are not numbers, dropped", f"{path}:{number}: not numbers, dropped")
            return None
        if len(values) >= 7 and len(values) % 2 == 1:  # a segmentation polygon: its bounding box
            xs, ys = values[1::2], values[2::2]
            self.problems.note("polygon label lines read as their bounding boxes")
            values = [values[0], (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs),
                      max(ys) - min(ys)]
        if len(values) != 5:
            self.problems.add("label lines without 5 fields (class cx cy w h), dropped",
                              f"{path}:{number}: {len(values)} fields instead of 5 (class cx cy w h), dropped")
            return None
        if values[0] != int(values[0]) or not 0 <= values[0] < classes:
            self.problems.add("objects with a class id outside data.yaml's names, dropped",
                              f"{path}:{number}: class id {fields[0]} is not one of 0..{classes - 1}, dropped")
            return None
        if values[3] <= 0 or values[4] <= 0:
            self.problems.add("zero-area or inverted boxes, dropped", f"{path}:{number}: zero-area box, dropped")
            return None
        return values
