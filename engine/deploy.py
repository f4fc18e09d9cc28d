"""The detector as an ONNX graph, run by ONNX Runtime: the export (network + decoding, or the whole detector with
per-class NMS and top-k in the graph), a runner with `Detector`'s interface, the cached export beside the weights,
the choice of runtime, and INT8 static quantisation calibrated on the user's images.

The whole-detector graph gives `engine.Detector`'s detections: same candidates (softmax, decode, clip to the
image, the best `pre_nms_top_k` priors per class), ONNX `NonMaxSuppression` per class (greedy, IoU > nms_thresh
suppresses, score >= score_thresh enters) and the best `top_k` of each image over all classes, in the
`PaddedDetections` layout: boxes [B, T, 4] in [0, 1], scores [B, T], labels [B, T] (class 0..C-2), counts [B].
"""
import hashlib
import json
import os
import time
import warnings
from collections import defaultdict
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from config import MODEL_KEYS, Config
from config_checks import check_model_flags
from config_resolve import resolve
from layers import PaddedDetections, greedy_nms, unpad_detections
from layers.detection import class_candidates, rank_detections
from utils.checkpoint import WeightsError, atomic_path, file_sha256
from utils.distributed import usable_cores
from utils.errors import ConfigError

from .detector import Detector, load_model, preprocess

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


def cached_export_path(weights: str, cfg: Config) -> str:
    """Where the whole-detector export of `weights` with cfg's network and post-processing settings lives: beside
    the weights (or in ~/.cache/ssd/onnx when that folder is not writable), named by the weights' SHA-256 and the
    export settings, so changed weights or settings never reuse an older file."""
    values = cfg.to_dict()
    settings = {k: values[k] for k in MODEL_KEYS + GRAPH_SETTINGS}  # the prior layout included
    key = hashlib.sha256(json.dumps([file_sha256(weights), settings, OPSET, EXPORT_VERSION, torch.__version__],
                                    sort_keys=True, default=str).encode()).hexdigest()[:12]
    folder = os.path.dirname(os.path.abspath(weights))
    if not os.access(folder, os.W_OK):
        folder = os.path.join(os.path.expanduser("~"), ".cache", "ssd", "onnx")
    stem = os.path.splitext(os.path.basename(weights))[0]
    return os.path.join(folder, f"{stem}.{key}.onnx")


def onnxruntime_version():
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.__version__


def choose_runtime(requested: str, device: torch.device, cfg: Config) -> tuple:
    """-> (runtime, why) for --runtime `requested`. `auto`: ONNX Runtime on a CPU (faster there, the same
    detections), PyTorch on a GPU or for settings the graph does not hold. An explicit onnxruntime with such a
    setting is a ConfigError naming the flag."""
    if requested == "torch":
        return "torch", "--runtime torch"
    blockers = []
    if device.type != "cpu":
        blockers.append(f"--device {device.type}: ONNX Runtime runs here on the CPU")
    if cfg.test.nms != "hard":
        blockers.append("--nms soft runs in PyTorch only")
    for key in ("amp", "compile", "cuda_graph"):
        if cfg.setting(key) not in ("auto", "off", False):
            blockers.append(f"--{key.replace('_', '-')} is a PyTorch setting")
    if onnxruntime_version() is None:
        blockers.append("onnxruntime (or onnx) is not installed: pip install onnx onnxruntime")
    if requested == "onnxruntime":
        if blockers:
            raise ConfigError(f"--runtime onnxruntime: {blockers[0]}; use --runtime torch")
        return "onnxruntime", "--runtime onnxruntime"
    if blockers:
        return "torch", f"auto: {blockers[0]}"
    return "onnxruntime", "auto: ONNX Runtime on a CPU, the same detections as PyTorch, faster"


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


class LoadedDetector(NamedTuple):
    """What `load_detector` hands to eval.py and detect.py."""
    detector: object  # engine.Detector or OnnxDetector: the same call, the same detections
    cfg: Config
    model: object  # the PyTorch model (None for an .onnx file)
    description: str  # one line: which runtime runs, where, and why


def brief(exc: Exception) -> str:
    """An exception as one short line: its type and the first line of its message."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def load_detector(weights: str, device: torch.device, flags: dict, timing: bool = False, state: dict = None,
                  say=None) -> LoadedDetector:
    """Weights (train.py checkpoint, plain SSD weights, or a whole-detector .onnx file) -> the detector on the
    runtime --runtime chooses (see `choose_runtime`). A .pth running on ONNX Runtime is exported on first use to
    `cached_export_path` and reused while the weights and settings stay the same; an export that fails under
    `auto` falls back to PyTorch, saying why in `description`. `say(line)` is told before an export starts."""
    flags = {k: v for k, v in flags.items() if v is not None}
    if flags.get("threads", 0) > usable_cores():  # more threads than cores only spin against each other
        (say or print)(f"note: --threads {flags['threads']} capped to {usable_cores()} (the CPU cores this process "
                       f"may use)")
        flags["threads"] = usable_cores()
    if weights.lower().endswith(".onnx"):
        return _load_onnx_file(weights, flags, timing)
    model, cfg = load_model(weights, device, flags, state)
    requested = cfg.test.runtime
    runtime, why = choose_runtime(requested, device, cfg)
    if runtime == "onnxruntime":
        path = cached_export_path(weights, cfg)
        reused = os.path.isfile(path)
        try:
            if reused:
                try:
                    detector = OnnxDetector(path, cfg.test.threads, timing)
                except Exception as exc:  # truncated, 0 bytes, overwritten: export it again
                    (say or print)(f"the cached ONNX export {path} does not load ({brief(exc)}): exporting it again")
                    os.remove(path)
                    reused = False
            if not reused:
                if say:
                    say(f"exporting the detector to ONNX once (seconds; reused while the weights and settings "
                        f"stay the same): {path}")
                export_onnx(model, cfg, path)
                detector = OnnxDetector(path, cfg.test.threads, timing)
        except Exception as exc:  # any exporter or runtime failure: the model still runs in PyTorch
            reason = brief(exc)
            if requested == "onnxruntime":
                raise ConfigError(f"--runtime onnxruntime: the export of {weights} to {path} failed ({reason}); "
                                  f"use --runtime torch") from None
            runtime, why = "torch", f"auto: the ONNX export failed ({reason})"
        else:
            return LoadedDetector(detector, cfg, model,
                                  f"runtime: onnxruntime {onnxruntime_version()} on the CPU, {detector.threads} "
                                  f"thread(s) ({why}; --runtime torch for PyTorch); graph "
                                  f"{'reused' if reused else 'exported to'} {path}")
    if device.type == "cpu" and cfg.test.threads:
        torch.set_num_threads(cfg.test.threads)
    detector = Detector.from_config(model, cfg, timing=timing)
    where = f"the CPU, {torch.get_num_threads()} thread(s)" if device.type == "cpu" else str(device)
    return LoadedDetector(detector, cfg, model, f"runtime: PyTorch {torch.__version__} on {where} ({why})")


def _load_onnx_file(path: str, flags: dict, timing: bool) -> LoadedDetector:
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: no such ONNX file")
    if flags.get("runtime") == "torch":
        raise ConfigError(f"--runtime torch: {path} is an ONNX file, which ONNX Runtime runs; give the .pth "
                          f"weights for PyTorch")
    if onnxruntime_version() is None:
        raise ConfigError(f"{path}: running an ONNX file needs onnxruntime and onnx: pip install onnx onnxruntime")
    saved = read_metadata(path)
    check_model_flags(path, saved, flags)
    for key in GRAPH_SETTINGS:
        if key in flags and flags[key] != saved[key]:
            raise ConfigError(f"--{key.replace('_', '-')} {flags[key]}: {path} holds {key.replace('_', '-')} "
                              f"{saved[key]} in its graph; export again with --{key.replace('_', '-')} "
                              f"{flags[key]} (python -m scripts.export_onnx --nms)")
    for key, value in (("nms", "hard"), ("amp", "off"), ("compile", False), ("cuda_graph", False)):
        if key in flags and flags[key] not in (value, "auto"):
            raise ConfigError(f"--{key.replace('_', '-')}: {path} is an ONNX graph with hard NMS in fp32 (a PyTorch "
                              f"setting; give the .pth weights with --runtime torch)")
    cfg = resolve(flags, {k: v for k, v in saved.items() if k not in ("graph_nms", "int8")})
    detector = OnnxDetector(path, cfg.test.threads, timing)
    kind = "INT8" if saved.get("int8") else "fp32"
    return LoadedDetector(detector, cfg, None,
                          f"runtime: onnxruntime {onnxruntime_version()} on the CPU, {detector.threads} thread(s); "
                          f"{kind} graph {path}")
