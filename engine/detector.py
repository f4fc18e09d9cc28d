"""The one inference path: load weights (a checkpoint of train.py or foreign weights), preprocess, run the network
and the post-processing in batches (device- and AMP-aware), map detections back to image pixels. Used by
eval.py, evaluation during training, detect.py, the ONNX export, the notebook and the benchmarks."""
import contextlib
import copy
import time
from collections import defaultdict

import numpy as np
import torch

from config import BACKBONES, Config, TestConfig
from config_checks import check_model_flags
from config_resolve import resolve
from data import ResizeTransform, as_model_input
from layers import PaddedDetections, PostProcessor, unpad_detections
from models import build_model, load_ssd_weights
from models.weights import weights_format
from utils.checkpoint import read_state
from utils.errors import ConfigError

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 products natively (AVX512-BF16 or AMX), as PyTorch's kernels see it."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def choose_precision(amp: str, device: torch.device, training: bool, backbone: str = "vgg16") -> tuple:
    """`--amp` -> (off, bf16 or fp16; why). auto: bfloat16 autocast for training on a GPU with bfloat16 and on a
    CPU that computes it natively where it speeds the backbone's step there (docs/speed.md; weights, loss and
    post-processing stay float32), float32 elsewhere and for inference."""
    if amp != "auto":
        return amp, f"--amp {amp}"
    if not training:
        return "off", "auto: float32 for inference"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", "auto: this GPU computes bfloat16"
        return "off", "auto: float32, this GPU has no bfloat16"
    if not BACKBONES[backbone].cpu_bf16:
        return "off", f"auto: float32, bfloat16 does not speed {backbone}'s training on a CPU"
    if cpu_has_native_bf16():
        return "bf16", "auto: this CPU computes bfloat16 natively, AVX512-BF16 or AMX"
    return "off", "auto: float32, this CPU has no native bfloat16"


def autocast(device: torch.device, amp: str):
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def load_model(weights: str, device="cpu", flags: dict = None, state: dict = None):
    """-> (model in eval mode on `device`, Config). A train.py checkpoint carries its settings (flags that would
    change its network are a ConfigError); plain weights (e.g. ssd.pytorch's) take the network settings from
    `flags` (Config keys: size, labels, batch_norm, dataset, ...; None = not given) over the VOC defaults.
    `state`: the file's contents if already read."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    state = read_state(weights) if state is None else state
    saved = state["config"] if weights_format(state) == "checkpoint" else None
    if saved is not None:
        check_model_flags(weights, saved, flags)
    cfg = resolve(flags, saved)
    model = build_model(cfg)
    load_ssd_weights(model, weights, state)
    cfg = cfg.replace(pixel_format=model.pixel_format)  # plain ssd.pytorch weights bring their own input format
    return model.to(device).eval(), cfg


def preprocess(images, size: int) -> tuple:
    """uint8 BGR HxWx3 images of any sizes -> (batch uint8 [B, 3, S, S], sizes [B, 2] (h, w))."""
    resize = ResizeTransform(size)
    batch = [resize(im, np.zeros((0, 4), np.float32), np.zeros(0, np.int64))[0] for im in images]
    tensor = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2)  # channels-last strides, as `collate`
    return tensor, torch.tensor([im.shape[:2] for im in images])


def _is_channels_last(model) -> bool:
    weight = next(m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    return weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


def synchronize(device):
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

    runtime = "torch"

    def __init__(self, model, postprocessor: PostProcessor = None, amp: str = "off", channels_last: bool = False,
                 compile: bool = False, cuda_graph: bool = False, nms_rounds: int = None, timing: bool = False):
        postprocessor = PostProcessor(model.box_coder) if postprocessor is None else postprocessor
        if channels_last and not _is_channels_last(model):  # a copy: the caller's model stays as it is
            model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        self.model, self.postprocessor, self.amp, self.channels_last = model, postprocessor, amp, channels_last
        self.network = torch.compile(model) if compile else model
        self.device = next(model.parameters()).device
        if cuda_graph and self.device.type != "cuda":
            raise ConfigError(f"--cuda-graph: CUDA graphs need the model on a CUDA device, it is on "
                              f"{self.device}")
        if cuda_graph and postprocessor.settings["nms"] != "hard":
            raise ConfigError("--cuda-graph: CUDA graphs support hard NMS only (Soft-NMS runs eagerly); drop "
                              "--nms soft")
        self.cuda_graph = cuda_graph
        self.nms_rounds = nms_rounds if nms_rounds is not None or not cuda_graph else TestConfig.graph_nms_rounds
        self.graphs = {}  # batch shape -> (graph, static input, static outputs)
        self.timing = timing
        self.seconds = defaultdict(float)
        self.fallbacks = 0

    @classmethod
    def from_config(cls, model, cfg: Config, amp: str = None, timing: bool = False, **overrides):
        device = next(model.parameters()).device
        amp = choose_precision(cfg.run.amp if amp is None else amp, device, training=False)[0]
        return cls(model, PostProcessor.from_config(cfg, model.box_coder, **overrides), amp, cfg.run.channels_last,
                   cfg.run.compile, cfg.test.cuda_graph,
                   cfg.test.graph_nms_rounds if cfg.test.cuda_graph else None, timing)

    def _network(self, images):
        with autocast(self.device, self.amp):
            loc, conf = self.network(images)
        return loc.float(), conf.float()

    def _postprocess(self, loc, conf, nms_rounds):
        return self.postprocessor.padded(loc, conf, nms_rounds)

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
    def padded(self, images: torch.Tensor) -> PaddedDetections:
        """-> fixed-shape detections (boxes in [0, 1]) as `layers.postprocess_padded`, always converged. Graph
        outputs are overwritten by the next call of the same shape."""
        images = as_model_input(images, self.device, self.channels_last)
        start = time.perf_counter()
        if self.cuda_graph:
            loc, conf, detections = self._replay(images)
        else:
            loc, conf = self._network(images)
            if self.timing:
                synchronize(self.device)
                middle = time.perf_counter()
                self.seconds["network"] += middle - start
                start = middle
            detections = self._postprocess(loc, conf, self.nms_rounds)
        if self.nms_rounds is not None and not bool(detections.converged):
            self.fallbacks += 1
            detections = self._postprocess(loc, conf, None)
        if self.timing:
            synchronize(self.device)
            self.seconds["graph" if self.cuda_graph else "postprocess"] += time.perf_counter() - start
        return detections

    def __call__(self, images: torch.Tensor, sizes: torch.Tensor = None, to=None) -> list:
        """-> list of B dicts (boxes [k, 4], scores [k], labels [k]); boxes in pixels of the original images
        when `sizes` [B, 2] (height, width) is given, else in [0, 1]. `to`: a device to move the batch's
        detections to first (one copy per batch instead of three per image)."""
        boxes, scores, labels, counts, _ = self.padded(images)
        if sizes is not None:
            boxes = boxes * sizes.to(self.device).flip(1).repeat(1, 2)[:, None].float()  # (w, h, w, h)
        if to is not None:
            boxes, scores, labels, counts = (t.to(to) for t in (boxes, scores, labels, counts))
        return unpad_detections(boxes, scores, labels, counts)
