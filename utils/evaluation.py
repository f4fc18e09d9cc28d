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
from data import BaseTransform, as_model_input, build_dataset, eval_loader
from layers import PostProcessor, unpad_detections
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
    tensor = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2)  # channels-last strides, as `collate`
    return tensor, torch.tensor([im.shape[:2] for im in images])


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Detector:
    """The inference path: uint8 BGR batches [B, 3, S, S] -> detections, network and post-processing together.

    Eager by default; `compile=True` runs the network through `torch.compile`. `cuda_graph=True` (CUDA only)
    captures network + post-processing once per batch shape and replays it: no Python or kernel-launch overhead,
    which is what batch-1 latency is made of. Inside the graph NMS runs `nms_rounds` rounds (see
    `layers.greedy_nms`); a batch where they did not reach the fixed point is post-processed again by the exact
    eager path, so the detections are always the exact ones. `nms_rounds` without a graph does the same eagerly
    (how the fallback is tested on CPU). `timing=True` accumulates seconds in `self.seconds` (network /
    postprocess, or graph), with a device sync per batch.
    """

    def __init__(self, model, postprocessor: PostProcessor, amp: str = "off", channels_last: bool = False,
                 compile: bool = False, cuda_graph: bool = False, nms_rounds: int = None, timing: bool = False):
        self.model, self.postprocessor, self.amp, self.channels_last = model, postprocessor, amp, channels_last
        if channels_last:  # the model's memory format goes with its input's
            model.to(memory_format=torch.channels_last)
        self.network = torch.compile(model) if compile else model
        self.device = next(model.parameters()).device
        if cuda_graph and self.device.type != "cuda":
            raise ValueError(f"CUDA graphs need the model on a CUDA device, it is on {self.device}")
        if cuda_graph and postprocessor.settings["nms"] != "hard":
            raise ValueError("CUDA graphs support hard NMS only (Soft-NMS runs eagerly)")
        self.cuda_graph = cuda_graph
        self.nms_rounds = nms_rounds if nms_rounds is not None or not cuda_graph else Config.graph_nms_rounds
        self.graphs = {}  # batch shape -> (graph, static input, static outputs)
        self.timing = timing
        self.seconds = defaultdict(float)
        self.fallbacks = 0

    @classmethod
    def from_config(cls, model, cfg: Config, amp: str = None, timing: bool = False, **overrides):
        return cls(model, PostProcessor.from_config(cfg, **overrides), cfg.amp if amp is None else amp,
                   cfg.channels_last, cfg.compile, cfg.cuda_graph, cfg.graph_nms_rounds if cfg.cuda_graph else None,
                   timing)

    def _network(self, images):
        with autocast(self.device, self.amp):
            loc, conf = self.network(images)
        return loc.float(), conf.float()

    def _postprocess(self, loc, conf, nms_rounds):
        return self.postprocessor.padded(loc, conf, self.model.priors, nms_iterations=nms_rounds)

    def _replay(self, images):
        key = (tuple(images.shape), images.stride())
        if key not in self.graphs:
            static_images = images.clone()
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):  # warm-up outside the graph (cuDNN autotuning, lazy allocations)
                for _ in range(2):
                    self._postprocess(*self._network(static_images), self.nms_rounds)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                loc, conf = self._network(static_images)
                outputs = (loc, conf, self._postprocess(loc, conf, self.nms_rounds))
            self.graphs[key] = (graph, static_images, outputs)
        graph, static_images, outputs = self.graphs[key]
        static_images.copy_(images)
        graph.replay()
        return outputs

    @torch.no_grad()
    def padded(self, images: torch.Tensor) -> tuple:
        """-> fixed-shape detections (boxes [B, T, 4] in [0, 1], scores [B, T], labels [B, T], counts [B]), as
        `layers.postprocess_padded`. Graph outputs are overwritten by the next call of the same shape."""
        images = as_model_input(images, self.device, self.channels_last)
        start = time.perf_counter()
        if self.cuda_graph:
            loc, conf, detections = self._replay(images)
        else:
            loc, conf = self._network(images)
            if self.timing:
                _sync(self.device)
                middle = time.perf_counter()
                self.seconds["network"] += middle - start
                start = middle
            detections = self._postprocess(loc, conf, self.nms_rounds)
        if self.nms_rounds is not None and not bool(detections[4]):
            self.fallbacks += 1
            detections = self._postprocess(loc, conf, None)
        if self.timing:
            _sync(self.device)
            self.seconds["graph" if self.cuda_graph else "postprocess"] += time.perf_counter() - start
        return detections[:4]

    def __call__(self, images: torch.Tensor, sizes: torch.Tensor = None, to=None) -> list:
        """-> list of B dicts (boxes [k, 4], scores [k], labels [k]); boxes in pixels of the original images
        when `sizes` [B, 2] (height, width) is given, else in [0, 1]. `to`: a device to move the batch's
        detections to first (one copy per batch instead of three per image)."""
        boxes, scores, labels, counts = self.padded(images)
        if sizes is not None:
            boxes = boxes * sizes.to(self.device).flip(1).repeat(1, 2)[:, None].float()  # (w, h, w, h)
        if to is not None:
            boxes, scores, labels, counts = (t.to(to) for t in (boxes, scores, labels, counts))
        return unpad_detections(boxes, scores, labels, counts)


def detect(model, images: torch.Tensor, postprocessor: PostProcessor, sizes=None, amp: str = "off",
           channels_last: bool = False) -> list:
    """One eager batch through `Detector`: images uint8 [B, 3, S, S] BGR -> list of B detection dicts."""
    return Detector(model, postprocessor, amp, channels_last)(images, sizes)


def evaluate(model, cfg, source, device, batch_size: int = 32, workers: int = 2, amp: str = "off",
             limit: int = 0, output: str = None, detector: Detector = None, progress=None) -> dict:
    """Run the model over `source` (its first `limit` images when > 0) and score it: VOC-style mAP (devkit) for
    VOC and shapes, COCOeval for COCO. `detector`: a `Detector` of `model` with its settings (default: from
    `cfg`). Writes results files, metrics.json and examples.jpg (the first images with their detections) to
    `output` when given."""
    was_training = model.training
    model.eval()
    detector = detector or Detector.from_config(model, cfg, amp, timing=True)
    dataset = build_dataset(cfg, train=False, source=source)
    indices = list(range(min(limit, len(source)) if limit > 0 else len(source)))
    loader = eval_loader(dataset, batch_size, workers, pin_memory=device.type == "cuda", indices=indices)
    results = {}
    start = time.perf_counter()
    for images, _, batch_indices, sizes in (progress(loader) if progress else loader):
        for index, det in zip(batch_indices.tolist(), detector(images, sizes, to="cpu")):
            results[index] = {k: v.numpy() for k, v in det.items()}
    total = time.perf_counter() - start
    model.train(was_training)
    if cfg.dataset == "COCO":
        metrics = score_coco(source, results, output)
    else:
        metrics = score_voc(source, results, cfg.metric, output)
    count = len(indices)
    metrics["speed"] = {"images": count, "total_s": total, "end_to_end_img_s": count / max(total, 1e-9),
                        **{f"{part}_img_s": count / max(seconds, 1e-9) for part, seconds in detector.seconds.items()}}
    if output:
        os.makedirs(output, exist_ok=True)
        write_examples(source, results, os.path.join(output, "examples.jpg"))
        with open(os.path.join(output, "metrics.json"), "w") as f:
            json.dump({k: v for k, v in metrics.items() if k != "curves"}, f, indent=2,
                      default=lambda v: None if isinstance(v, float) and math.isnan(v) else v)
    return metrics


def score_voc(source, results: dict, metric: str = "voc07", output: str = None) -> dict:
    names = source.class_names
    ground_truth, image_ids = {}, []
    for index, det in results.items():
        image_id = source.image_id(index)
        boxes, labels, difficult = source.annotation(index)
        ground_truth[image_id] = (to_devkit(boxes), labels, difficult)
        image_ids.append(np.full(len(det["scores"]), image_id))
    dets = list(results.values())
    image_ids = np.concatenate([np.zeros(0, str)] + image_ids)
    scores = np.concatenate([np.zeros(0)] + [d["scores"] for d in dets]).astype(np.float64)
    boxes = to_devkit(np.concatenate([np.zeros((0, 4))] + [d["boxes"] for d in dets]))
    labels = np.concatenate([np.zeros(0, np.int64)] + [d["labels"] for d in dets])
    by_class = {}
    for c, name in enumerate(names):
        mask = labels == c
        by_class[name] = (image_ids[mask], scores[mask], boxes[mask])
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
