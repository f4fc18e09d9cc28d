"""VOC detection scoring exactly as the official devkit (VOCevaldet.m / VOCap), and its results files.

Coordinates: the devkit works in 1-based inclusive pixels with +1 in widths. Boxes inside this repo are
continuous corners (data/voc.py reads a file's (x1, y1, x2, y2) as (x1 - 1, y1 - 1, x2, y2)); `to_devkit` is
the exact inverse, used for ground truth and detections alike, so scoring sees the file's own numbers.
"""
import functools
import math
import os
from collections import defaultdict

import numpy as np

from utils.errors import UserError


def to_devkit(boxes) -> np.ndarray:
    """[n, 4] continuous pixel corners -> 1-based inclusive devkit corners."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    boxes[:, :2] += 1
    return boxes


def voc_ap(recall: np.ndarray, precision: np.ndarray, metric: str = "voc07") -> float:
    """'voc07': 11-point interpolated AP; 'voc12': area under the monotone precision envelope (VOC2010+)."""
    if metric == "voc07":
        points = []
        for t in np.arange(0.0, 1.1, 0.1):
            above = precision[recall >= t]
            points.append(above.max() if above.size else 0.0)
        return float(np.mean(points))
    if metric != "voc12":
        raise ValueError(f"metric must be 'voc07' or 'voc12', got {metric!r}")
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    changes = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[changes] - mrec[changes - 1]) * mpre[changes]))


def devkit_overlaps(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Overlaps with the devkit's +1 pixel widths: [..., 4] x [..., G, 4] -> [..., G]."""
    box = boxes[..., None, :]
    iw = np.minimum(box[..., 2], gt[..., 2]) - np.maximum(box[..., 0], gt[..., 0]) + 1
    ih = np.minimum(box[..., 3], gt[..., 3]) - np.maximum(box[..., 1], gt[..., 1]) + 1
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    union = ((box[..., 2] - box[..., 0] + 1) * (box[..., 3] - box[..., 1] + 1)
             + (gt[..., 2] - gt[..., 0] + 1) * (gt[..., 3] - gt[..., 1] + 1) - inter)
    return inter / union


def detection_columns(records=()) -> tuple:
    """[(image_id, score, devkit box [4])] -> one class's detections as columns: (image_ids [D] str array,
    scores [D], boxes [D, 4]), the form the scoring functions take."""
    records = list(records)
    return (np.array([r[0] for r in records], dtype=str), np.array([r[1] for r in records], np.float64),
            np.array([r[2] for r in records], np.float64).reshape(-1, 4))


def evaluate_class(detections: tuple, ground_truth: dict, iou_thresh: float = 0.5, metric: str = "voc07"):
    """detections: (image_ids [D], scores [D], devkit boxes [D, 4]) (see `detection_columns`); ground_truth:
    {image_id: (devkit boxes [n, 4], difficult [n])} for this class (images without objects of the class may be
    absent). -> (ap, recall [D], precision [D]); ap is NaN when the class has no non-difficult object.

    VOCevaldet.m walks the detections by descending score; each takes the object it overlaps most (whether or
    not already taken). That choice does not depend on the order, so it is computed for all detections at
    once; the walk then reduces to: the first detection (by score) on an object is a hit, later ones are false
    positives, detections on difficult objects are ignored, the rest are false positives.
    """
    image_ids, scores, boxes = detections
    npos = sum(int((~np.asarray(d, bool)).sum()) for _, d in ground_truth.values())
    if len(scores) == 0:
        empty = np.zeros(0)
        return (math.nan if npos == 0 else 0.0), empty, empty
    gt_ids = np.array(sorted(ground_truth), dtype=str)
    max_gt = max([len(b) for b, _ in ground_truth.values()] + [1])
    gt_boxes = np.full((len(gt_ids) + 1, max_gt, 4), np.nan)  # last row: images without objects
    gt_difficult = np.zeros((len(gt_ids) + 1, max_gt), bool)
    for row, image_id in enumerate(gt_ids.tolist()):
        boxes_i, difficult = ground_truth[image_id]
        gt_boxes[row, : len(boxes_i)] = boxes_i
        gt_difficult[row, : len(boxes_i)] = difficult

    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    ids = np.asarray(image_ids, dtype=str)[order]
    position = np.searchsorted(gt_ids, ids)
    known = position < len(gt_ids)
    known[known] = gt_ids[position[known]] == ids[known]
    rows = np.where(known, position, len(gt_ids))
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)[order]
    overlaps = np.nan_to_num(devkit_overlaps(boxes, gt_boxes[rows]), nan=-np.inf)  # [D, G]
    best = overlaps.argmax(1)
    hit = overlaps[np.arange(len(order)), best] >= iou_thresh
    ignored = hit & gt_difficult[rows, best]
    candidate = hit & ~ignored
    object_key = rows * max_gt + best
    first = np.zeros(len(order), bool)
    _, first_index = np.unique(np.where(candidate, object_key, -1 - np.arange(len(order))), return_index=True)
    first[first_index] = True
    tp = (candidate & first).astype(np.float64)
    fp = (~ignored & ~(candidate & first)).astype(np.float64)
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    if npos == 0:
        return math.nan, np.zeros_like(tp), np.zeros_like(tp)
    recall = tp / npos
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return voc_ap(recall, precision, metric), recall, precision


def ground_truth_by_class(ground_truth_by_image: dict, num_classes: int) -> list:
    """{image_id: (devkit boxes [n, 4], labels [n], difficult [n])} -> per class, {image_id: (boxes, difficult)} of
    the images holding that class (what `evaluate_class` takes)."""
    per_class = [dict() for _ in range(num_classes)]
    for image_id, (boxes, labels, difficult) in ground_truth_by_image.items():
        boxes, labels, difficult = np.asarray(boxes), np.asarray(labels), np.asarray(difficult, bool)
        for c in range(num_classes):
            mask = labels == c
            if mask.any():
                per_class[c][image_id] = (boxes[mask], difficult[mask])
    return per_class


def evaluate_detections(detections_by_class: dict, ground_truth_by_image: dict, class_names,
                        metric: str = "voc07", iou_thresh: float = 0.5) -> dict:
    """detections_by_class: {class name: (image_ids [D], scores [D], devkit boxes [D, 4])} (`detection_columns`);
    ground_truth_by_image: {image_id: (devkit boxes [n, 4], labels [n], difficult [n])}.
    -> {"metric", "mAP", "AP": {class: ap}, "curves": {class: (recall, precision)}}. mAP averages the classes
    that have ground truth (a class without any is reported as NaN and left out, as in devkit practice)."""
    per_class_gt = ground_truth_by_class(ground_truth_by_image, len(class_names))
    aps, curves = {}, {}
    for c, name in enumerate(class_names):
        ap, recall, precision = evaluate_class(detections_by_class.get(name, detection_columns()), per_class_gt[c],
                                               iou_thresh, metric)
        aps[name], curves[name] = ap, (recall, precision)
    valid = [v for v in aps.values() if not math.isnan(v)]
    return {"metric": metric, "mAP": float(np.mean(valid)) if valid else math.nan, "AP": aps, "curves": curves}


def results_path(folder: str, class_name: str, image_set: str = "test") -> str:
    return os.path.join(folder, f"comp4_det_{image_set}_{class_name}.txt")


def write_class_results(path: str, columns: tuple):
    """One class's `comp4_det_<set>_<class>.txt`: lines `image_id score xmin ymin xmax ymax` (devkit pixels)."""
    with open(path, "w") as f:
        for image_id, score, box in zip(*columns):
            f.write(f"{image_id} {score:.6f} {box[0]:.2f} {box[1]:.2f} {box[2]:.2f} {box[3]:.2f}\n")


def write_results(folder: str, detections_by_class: dict, class_names, image_set: str = "test"):
    """The devkit's result files of every class in `folder`."""
    os.makedirs(folder, exist_ok=True)
    for name, write in results_writers(detections_by_class, class_names, image_set).items():
        write(os.path.join(folder, name))


def results_writers(detections_by_class: dict, class_names, image_set: str = "test") -> dict:
    """{file name: writer(path)}: one `comp4_det_<set>_<class>.txt` per class."""
    return {os.path.basename(results_path("", name, image_set)):
            functools.partial(write_class_results, columns=detections_by_class.get(name, detection_columns()))
            for name in class_names}


def read_results(folder: str, class_names, image_set: str = "test") -> dict:
    """-> {class name: detection columns} from the `comp4_det_<set>_<class>.txt` files in `folder`."""
    detections = defaultdict(list)
    for name in class_names:
        path = results_path(folder, name, image_set)
        if not os.path.isfile(path):
            raise UserError(f"{path}: results file missing for class '{name}'")
        with open(path) as f:
            for number, line in enumerate(f, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 6:
                    raise UserError(f"{path}:{number}: expected 'image_id score xmin ymin xmax ymax'")
                detections[name].append((parts[0], float(parts[1]), [float(v) for v in parts[2:]]))
    return {name: detection_columns(detections[name]) for name in class_names}
