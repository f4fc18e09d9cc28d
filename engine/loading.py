"""Weights -> a detector ready to run, on the runtime --runtime chooses: `load_detector`, which eval.py, detect.py
and the notebook use, the choice of runtime, and the whole-detector export cached beside the weights."""
import hashlib
import json
import os
from typing import NamedTuple

import torch

from config import MODEL_KEYS, Config
from config_checks import check_model_flags
from config_resolve import resolve
from utils.checkpoint import WeightsError, file_sha256
from utils.distributed import usable_cores
from utils.errors import ConfigError

from .deploy import EXPORT_VERSION, GRAPH_SETTINGS, OPSET, OnnxDetector, export_onnx, onnxruntime_version, read_metadata
from .detector import Detector, load_model


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
