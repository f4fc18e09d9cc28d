"""COCO 2014/2017 instances, and COCO-format datasets of your own.

Layout: root/annotations/instances_<set>.json and root/<set>/ holding the images (train2017, val2017, train2014,
val2014; minival/valminusminival sets read val2014 images). Roboflow's export is read as it is: root/<set>/ holding
the images and `_annotations.coco.json` (--sets train, --test-sets valid or val, test). CVAT's
`annotations/instances_default.json` is read as the set `default` with its images in root/default/.

Classes: by default every category that has at least one annotation, in category-id order (an empty placeholder
category, as Roboflow writes, is left out with one notice); `class_names` selects and orders categories by name and the
rest are dropped with a count. `category_ids[label]` maps a label back to its category id. Crowd boxes never enter
training (COCOeval ignores detections on them). Images without any usable annotation are skipped for training (they
carry no positive and SSD mines negatives only next to positives) and kept for evaluation.

The annotation file is read with `json` directly into flat arrays (a RecordTable); pycocotools' index is built only
when a COCO evaluation asks for it (`api`), never for training.
"""
import gc
import json
import os
from collections import Counter
from typing import NamedTuple

import numpy as np

from .problems import DatasetError, Problems, format_hint, log
from .records import RecordSource, RecordTable, exists


def _image_folder(root: str, image_set: str) -> str:
    name = "val2014" if "minival" in image_set else image_set
    return os.path.join(root, name)


# Roboflow's split folders: --sets val also finds valid/_annotations.coco.json.
SPLIT_FOLDERS = {"val": ("val", "valid"), "valid": ("valid", "val")}


def find_set(root: str, image_set: str) -> tuple:
    """-> (annotation file, image folder) of a set: ROOT/annotations/instances_<set>.json with the images in
    ROOT/<set>/ (COCO), else ROOT/<set>/_annotations.coco.json beside its images (Roboflow's export)."""
    ann_file = os.path.join(root, "annotations", f"instances_{image_set}.json")
    if exists(ann_file):
        return ann_file, _image_folder(root, image_set)
    for folder in SPLIT_FOLDERS.get(image_set, (image_set,)):
        beside = os.path.join(root, folder, "_annotations.coco.json")
        if exists(beside):
            return beside, os.path.join(root, folder)
    raise DatasetError(f"{ann_file}: not found, nor {os.path.join(root, image_set, '_annotations.coco.json')}; a "
                       f"COCO-format set '{image_set}' is read from ROOT/annotations/instances_{image_set}.json with "
                       f"its images in ROOT/{image_set}/, or from ROOT/{image_set}/_annotations.coco.json beside its "
                       f"images (Roboflow){format_hint(root, 'COCO')}")


def load_json(path: str) -> dict:
    """json.load with the garbage collector off: a COCO file is millions of new objects, none of them garbage,
    and collections triggered by their allocation would traverse them all again and again (half the load time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        with open(path, encoding="utf-8-sig") as f:  # json.load refuses a byte-order mark
            return json.load(f)
    finally:
        if enabled:
            gc.enable()


def select_categories(categories: list, counts: Counter, wanted, ann_file: str, notices: list) -> tuple:
    """-> (category ids, names, {category id: label}): `wanted` by name, or every category with an annotation (the
    others named in `notices` and the log), in label order. One name is one class: categories sharing a name are
    merged into it (said once), and the label's category id is the one with the most annotations (an export's
    placeholder named after a real class stays out of the way)."""
    cats = sorted(categories, key=lambda c: c["id"])
    by_name = {c["name"]: c["id"] for c in sorted(cats, key=lambda c: counts[c["id"]])}
    repeated = {n for n, k in Counter(c["name"] for c in cats).items() if k > 1}

    def named(c):
        return f"{c['name']} (id {c['id']})" if c["name"] in repeated else c["name"]
    if wanted:
        missing = [n for n in wanted if n not in by_name]
        if missing:
            raise DatasetError(f"{ann_file}: no category named {missing}; its categories: "
                               f"{', '.join(sorted(by_name))}")
        names = list(wanted)
    else:
        empty = [named(c) for c in cats if counts[c["id"]] == 0]
        if empty:
            notices.append(f"{ann_file}: {len(empty)} categor{'y' if len(empty) == 1 else 'ies'} without any "
                           f"annotation left out: {', '.join(empty)}")
            log.warning("%s", notices[-1])
        names = list(dict.fromkeys(c["name"] for c in cats if counts[c["id"]] > 0))
    label_of = {c["id"]: names.index(c["name"]) for c in cats if c["name"] in names and counts[c["id"]] > 0}
    merged = [f"{n} (ids {', '.join(str(i) for i, label in label_of.items() if names[label] == n)})"
              for n in names if sum(names[label] == n for label in label_of.values()) > 1]
    if merged:
        notices.append(f"{ann_file}: categories sharing a name merged, one name one class: {'; '.join(merged)}")
        log.warning("%s", notices[-1])
    return [by_name[n] for n in names], names, label_of


class CocoColumns(NamedTuple):
    """One COCO annotation file as arrays: its images, then its (usable) annotations, and its categories."""
    image_ids: np.ndarray
    files: list
    widths: np.ndarray
    heights: np.ndarray
    image_of: np.ndarray  # each annotation's image_id
    category: np.ndarray  # each annotation's category_id
    crowd: np.ndarray
    xywh: np.ndarray
    area: np.ndarray
    categories: list


class COCOSource(RecordSource):
    def __init__(self, root: str, image_sets, class_names=None, skip_empty: bool = True, name: str = "COCO"):
        """`class_names`: category names to keep, in label order (None or empty: every category with annotations)."""
        self.root = os.path.expanduser(root)
        self.name = name
        self.problems, self.names_found, self.notices = Problems(), Counter(), []
        self.ann_files, self.crowd, self.object_areas = {}, {}, {}
        self.class_names, self.category_ids = None, None
        if not os.path.isdir(self.root):
            raise DatasetError(f"{self.root}: dataset root not found (see docs/data.md)")
        parts = []
        for image_set in ([image_sets] if isinstance(image_sets, str) else image_sets):
            ann_file, folder = find_set(self.root, image_set)
            self.ann_files[image_set] = ann_file
            parts.append(self._read_set(ann_file, folder, class_names, skip_empty))
        columns = [np.concatenate([part[k] for part in parts]) for k in range(8)]
        ids, paths, sizes, counts, boxes, labels_, difficult, coco_ids = columns
        self.table = RecordTable(ids, paths, sizes, np.concatenate([[0], np.cumsum(counts)]), boxes, labels_,
                                 difficult, coco_ids)
        self.finish_reading(name, "COCO set(s)", image_sets)

    def _read_set(self, ann_file: str, folder: str, wanted, skip_empty: bool) -> tuple:
        """One annotation file -> columns (ids, paths, sizes, object counts, boxes, labels, difficult, coco ids)."""
        file = self._read_columns(ann_file)
        id_to_name = {c["id"]: c["name"] for c in file.categories}
        self.names_found.update({id_to_name.get(c, str(c)): n
                                 for c, n in Counter(file.category[~file.crowd].tolist()).items()})
        cat_ids, class_names, label_of = select_categories(file.categories, Counter(file.category.tolist()),
                                                           wanted or self.class_names, ann_file, self.notices)
        if self.category_ids is None:
            self.category_ids, self.class_names = cat_ids, class_names
        elif cat_ids != self.category_ids:
            raise DatasetError(f"{ann_file}: categories differ from the first set's")
        order, image_of = self._image_of_each_object(file, ann_file)
        labels = np.array([label_of.get(c, -1) for c in file.category.tolist()], np.int64)
        self._count_unknown_categories(file, labels, image_of >= 0, id_to_name, ann_file)
        keep = ~file.crowd & (labels >= 0) & (image_of >= 0)
        boxes = np.concatenate([file.xywh[:, :2], file.xywh[:, :2] + file.xywh[:, 2:]], 1)[keep]
        boxes, usable = self._clipped(boxes, image_of[keep], file, ann_file)
        image_index, labels_kept = image_of[keep][usable], labels[keep][usable]
        area_kept = file.area[keep][usable]
        counts = np.bincount(image_index, minlength=len(file.image_ids))
        chosen = self._chosen_images(file, counts, order, folder, ann_file, skip_empty)
        rank = np.full(len(file.image_ids), -1, np.int64)  # images in id order, their objects grouped behind them
        rank[chosen] = np.arange(len(chosen))
        object_rank = rank[image_index]
        kept_objects = object_rank >= 0
        sort = np.argsort(object_rank[kept_objects], kind="stable")
        crowd_kept = file.crowd & (labels >= 0) & (image_of >= 0) & (rank[np.maximum(image_of, 0)] >= 0)
        self.crowd[ann_file] = (file.image_ids[image_of[crowd_kept]], file.xywh[crowd_kept], file.area[crowd_kept],
                                np.array(cat_ids, np.int64)[labels[crowd_kept]])
        self.object_areas[ann_file] = area_kept[kept_objects][sort]
        paths = np.array([os.path.join(folder, file.files[i]) for i in chosen], dtype=str)
        return (file.image_ids[chosen].astype(str), paths, np.stack([file.heights[chosen], file.widths[chosen]], 1),
                counts[chosen], boxes[kept_objects][sort], labels_kept[kept_objects][sort],
                np.zeros(int(kept_objects.sum()), bool), file.image_ids[chosen])

    def _read_columns(self, ann_file: str) -> CocoColumns:
        try:
            doc = load_json(ann_file)
            images, annotations, categories = doc["images"], doc.get("annotations", []), doc["categories"]
            annotations = self._usable_annotations(annotations, ann_file)
            return CocoColumns(
                image_ids=np.array([im["id"] for im in images], np.int64), files=[im["file_name"] for im in images],
                widths=np.array([im.get("width", 0) for im in images], np.int64),
                heights=np.array([im.get("height", 0) for im in images], np.int64),
                image_of=np.array([a["image_id"] for a in annotations], np.int64),
                category=np.array([a["category_id"] for a in annotations], np.int64),
                crowd=np.array([a.get("iscrowd", 0) for a in annotations], bool),
                xywh=np.array([a["bbox"] for a in annotations], np.float32).reshape(-1, 4),
                area=np.array([a.get("area") or 0.0 for a in annotations], np.float64), categories=categories)
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{ann_file}: cannot be read as COCO instances ({type(exc).__name__}: {exc})") from None

    def _image_of_each_object(self, file: CocoColumns, ann_file: str) -> tuple:
        """(the images' order by id, each annotation's image index or -1 when its image_id is not listed)."""
        order = np.argsort(file.image_ids, kind="stable")
        if not len(file.image_ids):
            image_of = np.full(len(file.image_of), -1, np.int64)
        else:
            sorted_ids = file.image_ids[order]
            position = np.minimum(np.searchsorted(sorted_ids, file.image_of), len(file.image_ids) - 1)
            image_of = np.where(sorted_ids[position] == file.image_of, order[position], -1)
        unlisted = image_of < 0
        if unlisted.any():
            self.problems.add_many("objects on an image_id the file does not list, dropped",
                                   [f"{ann_file}: {int(unlisted.sum())} annotation(s) on image ids not in its "
                                    f"images, first: {int(file.image_of[unlisted][0])}"], int(unlisted.sum()))
        return order, image_of

    def _count_unknown_categories(self, file: CocoColumns, labels, listed, id_to_name: dict, ann_file: str):
        for cat, count in Counter(file.category[~file.crowd & (labels < 0) & listed].tolist()).items():
            if cat not in id_to_name:
                self.problems.add_many("objects of a category_id the file does not define, dropped",
                                       [f"{ann_file}: {count} object(s) of category_id {cat}, which is not in its "
                                        f"categories, dropped"], count)
                continue
            kind = f"objects of category '{id_to_name[cat]}' not in --class-names, dropped"
            self.problems.add_many(kind, [f"{ann_file}: {count} object(s) of '{id_to_name[cat]}' dropped"], count)

    def _clipped(self, boxes, image_index, file: CocoColumns, ann_file: str) -> tuple:
        """Boxes clipped to their image (a vectorised clean_boxes) -> (boxes, which of them are kept): the
        zero-area and the wholly outside ones dropped, each kind counted."""
        width, height = file.widths[image_index], file.heights[image_index]
        sized = (width > 0) & (height > 0)
        excess = np.max(np.stack([-boxes[:, 0], -boxes[:, 1], boxes[:, 2] - width, boxes[:, 3] - height]), axis=0)
        wholly = sized & ((boxes[:, 0] >= width) | (boxes[:, 1] >= height) | (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0))
        rounding = int((sized & (excess > 0) & (excess <= 0.5)).sum())
        if rounding:
            self.problems.note("boxes past the image edge by half a pixel or less (rounding), clamped", rounding)
        self._per_image(sized & (excess > 0.5) & ~wholly, image_index, file.image_ids, ann_file,
                        "boxes past the image edge, clipped", "box(es) outside the image, clipped")
        self._per_image(wholly, image_index, file.image_ids, ann_file, "boxes wholly outside the image, dropped",
                        "box(es) wholly outside the image, dropped")
        boxes[:, [0, 2]] = np.where(sized[:, None], boxes[:, [0, 2]].clip(0, width[:, None].clip(min=0)),
                                    boxes[:, [0, 2]])
        boxes[:, [1, 3]] = np.where(sized[:, None], boxes[:, [1, 3]].clip(0, height[:, None].clip(min=0)),
                                    boxes[:, [1, 3]])
        degenerate = ~((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))
        self._per_image(degenerate & ~wholly, image_index, file.image_ids, ann_file, "zero-area or inverted boxes, "
                        "dropped", "zero-area or inverted box(es) dropped")
        usable = ~(degenerate | wholly)
        return boxes[usable], usable

    def _chosen_images(self, file: CocoColumns, counts, order, folder: str, ann_file: str, skip_empty: bool):
        """The indices of the images read, in id order: those with objects (all of them with `skip_empty` off)
        whose file exists; the others counted."""
        use = counts > 0 if skip_empty else np.ones(len(file.image_ids), bool)
        if not use.all():
            self.problems.note("images without any object of --class-names, skipped for training", int((~use).sum()))
        existing = set(os.listdir(folder)) if os.path.isdir(folder) else set()
        present = np.array([f in existing for f in file.files], bool)
        missing = use & ~present
        if missing.any():
            self.problems.add_many("listed images not found, skipped",
                                   [f"{os.path.join(folder, file.files[i])}: image listed in {ann_file} does not "
                                    f"exist, skipped" for i in np.flatnonzero(missing)], int(missing.sum()))
        use &= present
        return order[use[order]]

    def _usable_annotations(self, annotations: list, ann_file: str) -> list:
        """Annotations with an image_id, a category_id and a 4-number bbox; the others dropped with a count."""
        def usable(a):
            box = a.get("bbox") if isinstance(a, dict) else None
            return isinstance(box, (list, tuple)) and len(box) == 4 and all(
                isinstance(v, (int, float)) for v in box) and a.get("image_id") is not None and \
                isinstance(a.get("category_id"), int)
        bad = [a for a in annotations if not usable(a)]
        if bad:
            first = bad[0].get("id", "?") if isinstance(bad[0], dict) else "?"
            self.problems.add_many("annotations without a usable bbox, image_id or category_id, dropped",
                                   [f"{ann_file}: {len(bad)} annotation(s) without a 4-number bbox, an image_id or "
                                    f"an integer category_id (first: id {first}), dropped"], len(bad))
            return [a for a in annotations if usable(a)]
        return annotations

    def _per_image(self, mask, image_index, image_ids, ann_file: str, kind: str, text: str):
        if mask.any():
            images, counts = np.unique(image_index[mask], return_counts=True)
            self.problems.add_many(kind, [f"{ann_file} image {image_ids[i]}: {n} {text}"
                                          for i, n in zip(images.tolist(), counts.tolist())], int(mask.sum()))

    @property
    def api(self):
        """pycocotools' index of the (single) evaluation set, built on first use: scoring needs it, training never."""
        if len(self.ann_files) != 1:
            raise DatasetError(f"COCO evaluation scores one set at a time, got {list(self.ann_files)}")
        if not hasattr(self, "_api"):
            import contextlib
            import io

            from pycocotools.coco import COCO
            with contextlib.redirect_stdout(io.StringIO()):
                self._api = COCO()
                self._api.dataset = self.scored_ground_truth()
                self._api.createIndex()
        return self._api

    def scored_ground_truth(self) -> dict:
        """The evaluation set as COCOeval sees it, in the COCO format: the objects this reader kept (clipped, the
        dropped ones gone) with their annotated areas, and the crowd regions of the kept classes (COCOeval ignores
        detections on them). Scoring the raw file instead would count objects the log says were dropped."""
        ann_file = next(iter(self.ann_files.values()))
        table = self.table
        per_image = np.diff(table.offsets)
        object_images = np.repeat(table.coco_ids, per_image)
        xywh = np.concatenate([table.boxes[:, :2], table.boxes[:, 2:] - table.boxes[:, :2]], 1).astype(np.float64)
        areas = self.object_areas[ann_file]
        areas = np.where(areas > 0, areas, xywh[:, 2] * xywh[:, 3])
        crowd_images, crowd_xywh, crowd_areas, crowd_categories = self.crowd[ann_file]
        annotations = [{"id": k + 1, "image_id": int(i), "category_id": int(self.category_ids[label]),
                        "bbox": box, "area": float(a), "iscrowd": 0}
                       for k, (i, label, box, a) in enumerate(zip(object_images.tolist(), table.labels.tolist(),
                                                                  xywh.tolist(), areas.tolist()))]
        annotations += [{"id": len(annotations) + k + 1, "image_id": int(i), "category_id": int(c), "bbox": box,
                         "area": float(a), "iscrowd": 1}
                        for k, (i, box, a, c) in enumerate(zip(crowd_images.tolist(), crowd_xywh.tolist(),
                                                               crowd_areas.tolist(), crowd_categories.tolist()))]
        return {"images": [{"id": int(i), "width": int(w), "height": int(h)}
                           for i, (h, w) in zip(table.coco_ids.tolist(), table.sizes.tolist())],
                "categories": [{"id": int(c), "name": n} for c, n in zip(self.category_ids, self.class_names)],
                "annotations": annotations}

    def coco_id(self, index: int) -> int:
        return int(self.table.coco_ids[index])
