"""Evaluate a model on a dataset through the one inference path: the devkit's mAP (--metric voc07/voc12, any
format) or COCOeval (--metric coco, COCO-format sets). Every listed image is scored exactly once."""
import functools
import json
import logging
import math
import os
import time

import numpy as np

from data import DatasetError, build_dataset, eval_loader
from utils.checkpoint import atomic_path
from utils.coco_eval import coco_detections, score_coco
from utils.visualize import plot_ap_table, plot_pr_curves, write_examples
from utils.voc_eval import evaluate_detections, results_writers, to_devkit

from .detector import Detector

log = logging.getLogger("ssd")


def evenly_spaced(count: int, limit: int) -> list:
    """`limit` indices spread evenly over range(count) (all when limit is 0 or >= count): a subset that keeps
    every part of a list sorted by class or by date."""
    if limit <= 0 or limit >= count:
        return list(range(count))
    return np.unique(np.linspace(0, count - 1, limit).round().astype(int)).tolist()


def json_safe(value):
    """NaN -> None (JSON null), recursively: json.dump would write NaN, which is not JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_metrics(metrics: dict, output: str):
    with atomic_path(os.path.join(output, "metrics.json")) as path, open(path, "w") as f:
        json.dump(json_safe({k: v for k, v in metrics.items() if k not in ("curves", "not_written")}), f, indent=2)


def write_evaluation(metrics: dict, output: str, writers: dict = None) -> list:
    """An evaluation's files in `output`: `writers` ({file name: writer(path)}: results, examples), the PR curves
    and AP chart of a VOC evaluation, then metrics.json (last: its presence says the evaluation completed). Each
    goes through a temporary file renamed into place, so a full disk leaves no partial file; the names of those
    not written (with the reason) are returned and kept in metrics["not_written"] for the caller to say after the
    numbers."""
    writers = dict(writers or {})
    if "curves" in metrics:
        writers["pr_curves.png"] = functools.partial(plot_pr_curves, metrics)
        writers["ap_table.png"] = functools.partial(plot_ap_table, metrics)
    failed = []
    for name, write in writers.items():
        try:
            with atomic_path(os.path.join(output, name)) as path:
                write(path)
        except OSError as exc:
            failed.append((name, exc.strerror or str(exc)))
    try:
        write_metrics(metrics, output)
    except OSError as exc:
        failed.append(("metrics.json", exc.strerror or str(exc)))
    metrics["not_written"] = failed
    return failed


def not_written_line(metrics: dict, output: str) -> str:
    """One line for the files of an evaluation that could not be written ('' when all were)."""
    failed = metrics.get("not_written")
    if not failed:
        return ""
    names = ", ".join(name for name, _ in failed[:3]) + (f" and {len(failed) - 3} more" if len(failed) > 3 else "")
    reasons = "; ".join(sorted({reason for _, reason in failed}))
    return f"could not write {len(failed)} of the evaluation's files in {output} ({reasons}): {names}; the " \
        f"numbers above are complete"


def evaluate(model, cfg, source, device, output: str = None, detector: Detector = None, progress=None) -> dict:
    """Run the model over `source` and score it, with cfg's batch size, workers, precision and `eval_limit` (> 0:
    that many evenly spaced images). `detector`: a `Detector` of `model` with its settings (default: from `cfg`),
    or an `OnnxDetector` (then `model` may be None).
    An image that cannot be decoded stops with a DatasetError naming it (cfg.data.unreadable == "stop") or is scored
    as an image without detections ("miss", one summary line). Writes results files, metrics.json and
    examples.jpg to `output` when given; `progress` wraps the batches (e.g. a tqdm bar)."""
    was_training = model is not None and model.training
    if model is not None:
        model.eval()
    detector = detector or Detector.from_config(model, cfg, timing=True)
    indices = evenly_spaced(len(source), cfg.test.eval_limit)
    try:
        start = time.perf_counter()
        results, unreadable = detect_all(detector, cfg, source, device, indices, progress)
        total = time.perf_counter() - start
    finally:
        if model is not None:
            model.train(was_training)
    if unreadable:
        log.warning("%d image(s) could not be decoded and were scored as images without detections (their "
                    "objects count as misses), first: %s", len(unreadable), unreadable[0])
    metrics, writers = score(cfg.test.metric, source, results)
    count = len(indices)
    metrics.update(runtime=detector.runtime, unreadable=len(unreadable), images=count, images_in_set=len(source))
    metrics["speed"] = {"images": count, "images_in_set": len(source), "total_s": total,
                        "end_to_end_img_s": count / max(total, 1e-9),
                        **{f"{part}_img_s": count / max(seconds, 1e-9)
                           for part, seconds in detector.seconds.items()}}
    if output:
        skipped = set(unreadable)
        readable = {i: det for i, det in results.items() if source.image_path(i) not in skipped}
        writers["examples.jpg"] = functools.partial(write_examples, source, readable)
        write_evaluation(metrics, output, writers)
    return metrics


def detect_all(detector, cfg, source, device, indices, progress) -> tuple:
    """The detections of the images `indices` of `source` -> ({index: detections as numpy}, unreadable paths)."""
    loader = eval_loader(build_dataset(cfg, train=False, source=source), cfg.solver.batch_size, cfg.data.workers,
                         pin_memory=device.type == "cuda", indices=indices)
    results, unreadable = {}, []
    for batch in (progress(loader) if progress else loader):
        detections = detector(batch.images, batch.sizes, to="cpu")
        for index, det, size in zip(batch.indices.tolist(), detections, batch.sizes.tolist()):
            if size == [0, 0]:  # the loader's mark of an image it could not decode
                path = source.image_path(index)
                if cfg.data.unreadable == "stop":
                    raise DatasetError(f"{path}: cannot be decoded; fix or remove it, or pass --unreadable miss "
                                       f"to score it as an image without detections")
                unreadable.append(path)
                det = {k: v[:0] for k, v in det.items()}
            results[index] = {k: v.numpy() for k, v in det.items()}
    return results, unreadable


def score(metric: str, source, results: dict) -> tuple:
    """-> (metrics, {file name: writer of it}): COCOeval's for --metric coco, else the devkit's."""
    if metric != "coco":
        metrics, by_class = score_voc(source, results, metric, columns=True)
        return metrics, results_writers(by_class, source.class_names)
    if not any(len(source.annotation(i)[1]) for i in results):
        raise DatasetError(f"{source.name}: the {len(results)} evaluated image(s) hold no object of the "
                           f"classes {list(source.class_names)}: nothing to score; check --class-names and "
                           f"--test-sets")
    by_coco_id = {source.coco_id(i): det for i, det in results.items()}
    metrics = score_coco(source.api, by_coco_id, source.category_ids, class_names=source.class_names)
    return metrics, {"detections_coco.json": functools.partial(write_json, coco_detections(by_coco_id,
                                                                                         source.category_ids))}


def write_json(value, path: str):
    with open(path, "w") as f:
        json.dump(value, f)


def score_voc(source, results: dict, metric: str = "voc07", columns: bool = False):
    """Devkit AP of `results` ({index: dict(boxes, scores, labels)}) against the source's annotations -> metrics
    (with `columns`: and the detections by class name, as the devkit's result files hold them).
    A DatasetError when the evaluated images hold no object to score."""
    class_names = source.class_names
    ground_truth, image_ids, objects = {}, [], 0
    for index, det in results.items():
        image_id = source.image_id(index)
        boxes, labels, difficult = source.annotation(index)
        ground_truth[image_id] = (to_devkit(boxes), labels, difficult)
        objects += int((~difficult).sum())
        image_ids.append(np.full(len(det["scores"]), image_id))
    if objects == 0:
        raise DatasetError(f"{source.name}: the {len(results)} evaluated image(s) hold no object of the classes "
                           f"{list(class_names)} (difficult ones aside): nothing to score; check --class-names and "
                           f"--test-sets")
    dets = list(results.values())
    image_ids = np.concatenate([np.zeros(0, str)] + image_ids)
    scores = np.concatenate([np.zeros(0)] + [d["scores"] for d in dets]).astype(np.float64)
    boxes = to_devkit(np.concatenate([np.zeros((0, 4))] + [d["boxes"] for d in dets]))
    labels = np.concatenate([np.zeros(0, np.int64)] + [d["labels"] for d in dets])
    by_class = {}
    for c, name in enumerate(class_names):
        mask = labels == c
        by_class[name] = (image_ids[mask], scores[mask], boxes[mask])
    metrics = evaluate_detections(by_class, ground_truth, class_names, metric)
    return (metrics, by_class) if columns else metrics


def format_ap_table(metrics: dict) -> str:
    """The per-class AP table (VOC and COCO alike; COCO's summary above it); "-" where there is nothing to score."""
    def cell(ap):
        return "  -   " if ap is None or math.isnan(ap) else f"{ap:.4f}"
    width = max([len(n) for n in metrics["AP"]] + [5])
    lines = [f"| {'class':<{width}} | AP     |", f"|{'-' * (width + 2)}|--------|"]
    lines += [f"| {name:<{width}} | {cell(ap)} |" for name, ap in metrics["AP"].items()]
    lines.append(f"| {'mAP':<{width}} | {cell(metrics['mAP'])} |")
    if metrics.get("metric") == "coco":
        lines = [metrics.get("summary", ""), "per class: AP@[.5:.95]"] + lines
    return "\n".join(lines)
