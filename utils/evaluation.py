"""The one inference path (model + post-processing, batched, device- and AMP-aware) and dataset evaluation,
shared by eval.py, evaluation during training, detect scripts and the notebook."""
import contextlib
import io
import json
import math
import os
import time
from collections import defaultdict

import numpy as np
import torch

from config import Config, config_for
from data import BaseTransform, build_dataset, eval_loader
from layers import PostProcessor
from models import build_ssd_from_config, load_ssd_weights
from models.weights import read_state, weights_format

from .visualize import write_examples
from .voc_eval import evaluate_detections, to_devkit, write_results

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, amp: str):
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def load_model(weights: str, device="cpu", overrides: dict = None, state: dict = None):
    """-> (model in eval mode on `device`, Config). A train.py checkpoint carries its settings; plain weights
    (e.g. ssd.pytorch's) take them from `overrides` (Config keys: size, labels, batch_norm, dataset, ...) over
    the VOC defaults. None values in `overrides` are ignored. `state`: the file's contents if already read."""
    overrides = overrides or {}
    state = read_state(weights) if state is None else state
    saved = dict(state["config"]) if weights_format(state) == "checkpoint" else {}
    values = {**(saved or config_for(overrides.get("dataset") or "VOC").to_dict())}
    values.update({k: v for k, v in overrides.items() if v is not None})
    cfg = Config.from_dict(values)
    model = build_ssd_from_config(cfg)
    load_ssd_weights(model, weights, state)
    cfg.pixel_format = model.pixel_format  # plain ssd.pytorch weights bring their own input format
    return model.to(device).eval(), cfg


def preprocess(images, size: int) -> tuple:
    """uint8 BGR HxWx3 images of any sizes -> (batch uint8 [B, 3, S, S], sizes [B, 2] (h, w))."""
    resize = BaseTransform(size)
    batch = [resize(im, np.zeros((0, 4), np.float32), np.zeros(0, np.int64))[0] for im in images]
    tensor = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).contiguous()
    return tensor, torch.tensor([im.shape[:2] for im in images])


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def detect(model, images: torch.Tensor, postprocessor: PostProcessor, sizes=None, amp: str = "off",
           channels_last: bool = False, timing: dict = None):
    """images uint8 [B, 3, S, S] BGR (any device) -> list of B dicts (boxes [k, 4], scores [k], labels [k]).
    Boxes are in pixels of the original images when `sizes` [B, 2] (height, width) is given, else in [0, 1]."""
    device = next(model.parameters()).device
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    start = time.perf_counter()
    with autocast(device, amp):
        loc, conf = model(images)
    if timing is not None:
        _sync(device)
        middle = time.perf_counter()
    detections = postprocessor(loc.float(), conf.float(), model.priors)
    if sizes is not None:
        scale = sizes.to(device).flip(1).repeat(1, 2).float()  # (w, h, w, h)
        for det, s in zip(detections, scale):
            det["boxes"] = det["boxes"] * s
    if timing is not None:
        _sync(device)
        timing["network_s"] = timing.get("network_s", 0.0) + middle - start
        timing["postprocess_s"] = timing.get("postprocess_s", 0.0) + time.perf_counter() - middle
    return detections


def evaluate(model, cfg, source, device, batch_size: int = 32, workers: int = 2, amp: str = "off",
             limit: int = 0, output: str = None, postprocessor: PostProcessor = None, progress=None) -> dict:
    """Run the model over `source` (its first `limit` images when > 0) and score it: VOC-style mAP (devkit) for
    VOC and shapes, COCOeval for COCO. Writes results files, metrics.json and examples.jpg (the first images with
    their detections) to `output` when given."""
    was_training = model.training
    model.eval()
    postprocessor = postprocessor or PostProcessor.from_config(cfg)
    dataset = build_dataset(cfg, train=False, source=source)
    indices = list(range(min(limit, len(source)) if limit > 0 else len(source)))
    loader = eval_loader(dataset, batch_size, workers, pin_memory=device.type == "cuda", indices=indices)
    timing, results = {}, {}
    start = time.perf_counter()
    for images, _, batch_indices, sizes in (progress(loader) if progress else loader):
        detections = detect(model, images, postprocessor, sizes, amp, cfg.channels_last, timing)
        for index, det in zip(batch_indices.tolist(), detections):
            results[index] = {k: v.cpu().numpy() for k, v in det.items()}
    total = time.perf_counter() - start
    model.train(was_training)
    if cfg.dataset == "COCO":
        metrics = score_coco(source, results, output)
    else:
        metrics = score_voc(source, results, cfg.metric, output)
    count = len(indices)
    metrics["speed"] = {"images": count, "total_s": total,
                        "network_img_s": count / max(timing.get("network_s", 0), 1e-9),
                        "postprocess_img_s": count / max(timing.get("postprocess_s", 0), 1e-9),
                        "end_to_end_img_s": count / max(total, 1e-9)}
    if output:
        os.makedirs(output, exist_ok=True)
        write_examples(source, results, os.path.join(output, "examples.jpg"))
        with open(os.path.join(output, "metrics.json"), "w") as f:
            json.dump({k: v for k, v in metrics.items() if k != "curves"}, f, indent=2,
                      default=lambda v: None if isinstance(v, float) and math.isnan(v) else v)
    return metrics


def score_voc(source, results: dict, metric: str = "voc07", output: str = None) -> dict:
    names = source.class_names
    by_class = defaultdict(list)
    ground_truth = {}
    for index, det in results.items():
        image_id = source.image_id(index)
        boxes, labels, difficult = source.annotation(index)
        ground_truth[image_id] = (to_devkit(boxes), labels, difficult)
        for box, score, label in zip(to_devkit(det["boxes"]), det["scores"], det["labels"]):
            by_class[names[int(label)]].append((image_id, float(score), box))
    if output:
        write_results(output, by_class, names)
    return evaluate_detections(by_class, ground_truth, names, metric)


def score_coco(source, results: dict, output: str = None) -> dict:
    from pycocotools.cocoeval import COCOeval

    detections = []
    for index, det in results.items():
        record = source.records[index]
        for (x1, y1, x2, y2), score, label in zip(det["boxes"].tolist(), det["scores"].tolist(),
                                                  det["labels"].tolist()):
            detections.append({"image_id": record.extra["coco_id"], "category_id": source.category_ids[label],
                               "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                               "score": round(score, 5)})
    if output:
        os.makedirs(output, exist_ok=True)
        with open(os.path.join(output, "detections_coco.json"), "w") as f:
            json.dump(detections, f)
    api = next(iter(source.apis.values()))
    names = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100", "AR_small",
             "AR_medium", "AR_large"]
    if not detections:
        return {"metric": "coco", "mAP": 0.0, **{n: 0.0 for n in names}}
    with contextlib.redirect_stdout(io.StringIO()) as captured:
        coco_dt = api.loadRes(detections)
        evaluator = COCOeval(api, coco_dt, "bbox")
        evaluator.params.imgIds = sorted({source.records[i].extra["coco_id"] for i in results})
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = {n: float(v) for n, v in zip(names, evaluator.stats)}
    return {"metric": "coco", "mAP": stats["AP"], **stats, "summary": captured.getvalue()}


def format_ap_table(metrics: dict) -> str:
    if metrics.get("metric") == "coco":
        return metrics.get("summary", "") + f"\nAP: {metrics['mAP']:.4f}"
    width = max(len(n) for n in metrics["AP"]) if metrics["AP"] else 5
    lines = [f"| {'class':<{width}} | AP     |", f"|{'-' * (width + 2)}|--------|"]
    for name, ap in metrics["AP"].items():
        lines.append(f"| {name:<{width}} | " + ("  -   " if math.isnan(ap) else f"{ap:.4f}") + " |")
    lines.append(f"| {'mAP':<{width}} | {metrics['mAP']:.4f} |")
    return "\n".join(lines)
