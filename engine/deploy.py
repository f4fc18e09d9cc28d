"""The detector as an ONNX graph, run by ONNX Runtime: the export (network + decoding, or the whole detector with
per-class NMS and top-k in the graph), INT8 static quantisation calibrated on the user's images, and a runner with
`Detector`'s interface. Which runtime runs a weights file is engine/loading.py's.

The whole-detector graph gives `engine.Detector`'s detections: same candidates (softmax, decode, clip to the
image, the best `pre_nms_top_k` priors per class), ONNX `NonMaxSuppression` per class (greedy, IoU > nms_thresh
suppresses, score >= score_thresh enters) and the best `top_k` of each image over all classes, in the
`PaddedDetections` layout: boxes [B, T, 4] in [0, 1], scores [B, T], labels [B, T] (class 0..C-2), counts [B].
"""
import json
import time
import warnings
from collections import defaultdict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from config import Config
from layers import PaddedDetections, greedy_nms, unpad_detections
from layers.postprocessing import class_candidates, rank_detections
from utils.checkpoint import atomic_path
from utils.distributed import usable_cores
from utils.errors import ConfigError

from .detector import preprocess

OPSET = 17
EXPORT_VERSION = 1  # part of the cache key: a change of the exported graph makes earlier cached files stale
GRAPH_SETTINGS = ("score_thresh", "nms_thresh", "top_k", "pre_nms_top_k")  # fixed in a whole-detector graph
METADATA_KEY = "ssd_config"


class DecodedSSD(nn.Module):
    """SSD followed by softmax and prior decoding: images -> (boxes [B, P, 4], scores [B, P, C])."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        loc, conf = self.model(images)
        return self.model.box_coder.decode(loc), F.softmax(conf, dim=-1)


class _NonMaxSuppression(torch.autograd.Function):
    """ONNX NonMaxSuppression on groups of candidates: boxes [G, K, 4], scores [G, 1, K] -> selected [M, 3]
    (group, 0, candidate). Eagerly (while tracing) the same greedy NMS as layers.greedy_nms."""

    @staticmethod
    def forward(ctx, boxes, scores, iou_thresh: float, score_thresh: float):
        keep, _ = greedy_nms(boxes, scores[:, 0] >= score_thresh, iou_thresh)
        group, index = keep.nonzero(as_tuple=True)
        return torch.stack([group, torch.zeros_like(group), index], 1)

    @staticmethod
    def symbolic(g, boxes, scores, iou_thresh: float, score_thresh: float):
        # ONNX Runtime keeps a box when score > score_threshold; the float just below ours makes it ">=".
        below = float(np.nextafter(np.float32(score_thresh), np.float32(-1)))
        return g.op("NonMaxSuppression", boxes, scores,
                    g.op("Constant", value_t=torch.tensor([2 ** 31 - 1], dtype=torch.int64)),
                    g.op("Constant", value_t=torch.tensor([iou_thresh], dtype=torch.float32)),
                    g.op("Constant", value_t=torch.tensor([below], dtype=torch.float32)))


class WholeDetector(nn.Module):
    """SSD + layers.postprocess_padded (hard NMS) in exportable operations: uint8 images -> (boxes, scores,
    labels, counts), the PaddedDetections layout with T = min(top_k, (C-1) x min(pre_nms_top_k, P))."""

    def __init__(self, model, score_thresh=0.01, nms_thresh=0.45, top_k=200, pre_nms_top_k=400):
        super().__init__()
        self.model = model
        self.score_thresh, self.nms_thresh, self.top_k, self.pre_nms_top_k = (score_thresh, nms_thresh, top_k,
                                                                              pre_nms_top_k)

    def forward(self, images):
        loc, conf = self.model(images)
        cand_boxes, cand_scores = class_candidates(loc, conf, self.model.box_coder, self.pre_nms_top_k)
        selected = _NonMaxSuppression.apply(cand_boxes, cand_scores[:, None], self.nms_thresh, self.score_thresh)
        keep = torch.zeros_like(cand_scores).index_put((selected[:, 0], selected[:, 2]),
                                                       torch.ones_like(selected[:, 0], dtype=cand_scores.dtype))
        return rank_detections(cand_boxes, cand_scores, keep > 0, images.shape[0], self.top_k)


def export_onnx(model, cfg: Config, path: str, nms: bool = True, opset: int = OPSET):
    """Write `model` as ONNX to `path` (atomically): with `nms` the whole detector (outputs boxes, scores, labels,
    counts), else network + decoding (outputs boxes [B, P, 4], scores [B, P, C]). Input `images`: uint8
    [B, 3, S, S] BGR, batch size dynamic. The resolved config is stored in the file's metadata."""
    model = model.eval()
    if nms:
        wrapped = WholeDetector(model, **{k: cfg.setting(k) for k in GRAPH_SETTINGS}).eval()
        outputs = ["boxes", "scores", "labels", "counts"]
    else:
        wrapped, outputs = DecodedSSD(model).eval(), ["boxes", "scores"]
    example = torch.zeros(2, 3, model.size, model.size, dtype=torch.uint8)
    with atomic_path(path) as temporary, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapped, (example,), temporary, dynamo=False, opset_version=opset,
                          input_names=["images"], output_names=outputs,
                          dynamic_axes={name: {0: "batch"} for name in ["images"] + outputs})
        _store_settings(temporary, dict(cfg.to_dict(), graph_nms=nms))
    return wrapped


def _store_settings(path: str, settings: dict):
    """Write `settings` (the resolved config and how the graph was made) as the file's only metadata entry."""
    import onnx
    graph = onnx.load(path)
    del graph.metadata_props[:]
    entry = graph.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(settings)
    onnx.save(graph, path)


def read_metadata(path: str) -> dict:
    """The config an export stored in `path` (a ConfigError when the file is not one of ours)."""
    import onnx
    try:
        graph = onnx.load(path, load_external_data=False)
    except Exception as exc:  # onnx raises its own DecodeError, or OSError
        raise ConfigError(f"{path}: not a readable ONNX file ({type(exc).__name__})") from None
    props = {p.key: p.value for p in graph.metadata_props}
    if METADATA_KEY not in props:
        raise ConfigError(f"{path}: an ONNX file without this repo's settings (write it with "
                          f"python -m scripts.export_onnx --nms)")
    saved = json.loads(props[METADATA_KEY])
    if not saved.get("graph_nms"):
        raise ConfigError(f"{path}: exported without --nms (network only); eval.py and detect.py need the whole "
                          f"detector: python -m scripts.export_onnx --nms")
    return saved


class OnnxDetector:
    """`engine.Detector`'s interface on ONNX Runtime: uint8 BGR batches [B, 3, S, S] -> detections, from a
    whole-detector ONNX file. `timing=True` accumulates seconds in `self.seconds["graph"]`."""
    runtime = "onnxruntime"

    def __init__(self, path: str, threads: int = 0, timing: bool = False):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or usable_cores()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.path, self.threads = path, options.intra_op_num_threads
        self.device = torch.device("cpu")
        self.timing = timing
        self.seconds = defaultdict(float)
        self.fallbacks = 0

    def padded(self, images: torch.Tensor) -> PaddedDetections:
        start = time.perf_counter()
        boxes, scores, labels, counts = self.session.run(None, {"images": np.ascontiguousarray(images.cpu().numpy())})
        if self.timing:
            self.seconds["graph"] += time.perf_counter() - start
        return PaddedDetections(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(labels),
                                torch.from_numpy(counts), torch.ones((), dtype=torch.bool))

    def __call__(self, images: torch.Tensor, sizes: torch.Tensor = None, to=None) -> list:
        boxes, scores, labels, counts, _ = self.padded(images)
        if sizes is not None:
            boxes = boxes * sizes.flip(1).repeat(1, 2)[:, None].float()  # (w, h, w, h)
        return unpad_detections(boxes, scores, labels, counts)


def onnxruntime_version():
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.__version__


def quantize_int8(source: str, target: str, calibration_images: list, size: int):
    """Static INT8 quantisation (ONNX Runtime's tools: QDQ, per-channel int8 weights, uint8 activations with
    percentile ranges) of the convolutions of the whole-detector graph `source` but the heads, calibrated on
    `calibration_images` (uint8 HxWx3 BGR arrays); post-processing stays fp32. The settings metadata is carried
    over. Writes `target` atomically."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([preprocess([image], size)[0].contiguous().numpy() for image in calibration_images])

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"images": batch}

    with atomic_path(target) as temporary:
        # ONNX Runtime's pre-processing folds the exporter's Identity-shared weights into initializers, without
        # which the convolutions stay fp32 behind per-run dequantisation (slower than the fp32 graph)
        quant_pre_process(source, temporary, skip_symbolic_shape=True)
        # the box and class heads stay fp32: small, and where 8 bits cost the most accuracy (small objects)
        heads = [node.name for node in onnx.load(temporary).graph.node
                 if node.op_type == "Conv" and node.name.startswith(("/model/loc", "/model/conf"))]
        # activation ranges from the 99.99th percentile, not the extremes: on the BCCD SSDLite min-max ranges cost
        # 2 mAP points (the small class), percentile ones none
        quantize_static(temporary, temporary, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"],
                        nodes_to_exclude=heads, calibrate_method=CalibrationMethod.Percentile,
                        extra_options={"CalibPercentile": 99.99})
        _store_settings(temporary, dict(read_metadata(source), int8=True))
