"""Every default of the project in one place.

`Config` holds the model, data, schedule and evaluation settings. `train.py` builds one from these defaults,
the per-dataset overrides in `DATASET_DEFAULTS` and the command line; the resolved config is stored in every
checkpoint (as a plain dict) so that eval.py, detect.py and the notebook rebuild the same model from it.

The prior-box settings use ssd.pytorch's dict keys (`PriorBox(cfg)` takes them) so its checkpoints line up.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

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
}


@dataclass
class Config:
    # model
    size: int = 300
    batch_norm: bool = False
    basenet: str = "weights/vgg16_reducedfc.pth"
    pixel_format: str = "caffe"
    labels: list = field(default_factory=lambda: list(VOC_CLASSES))
    # data
    dataset: str = "VOC"
    dataset_root: str = "~/data/VOCdevkit"
    sets: list = field(default_factory=lambda: ["2007:trainval", "2012:trainval"])
    test_sets: list = field(default_factory=lambda: ["2007:test"])
    augment: bool = True
    # The original Caffe SSD trains with `difficult` objects (more positives, and its published mAP comes from it);
    # ssd.pytorch drops them. Evaluation always ignores them, as the devkit does.
    train_difficult: bool = True
    expand_max_ratio: float = 4.0
    shapes_train_images: int = 20000
    shapes_test_images: int = 500
    workers: int = 4
    # schedule (paper defaults for VOC)
    batch_size: int = 32
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_steps: list = field(default_factory=lambda: [80000, 100000])
    gamma: float = 0.1
    warmup_iters: int = 500
    max_iter: int = 120000
    # loss
    overlap_thresh: float = 0.5
    neg_pos: int = 3
    # post-processing / evaluation
    conf_thresh: float = 0.01
    nms_thresh: float = 0.45
    top_k: int = 200
    pre_nms_top_k: int = 400
    nms: str = "hard"
    soft_nms_method: str = "gaussian"
    soft_nms_sigma: float = 0.5
    metric: str = "voc07"
    # run
    device: str = "auto"
    seed: int = 0
    amp: str = "off"
    channels_last: bool = False
    compile: bool = False
    # inference: network + post-processing captured once per batch shape as a CUDA graph and replayed; its NMS
    # runs a fixed number of rounds and falls back to the exact eager path when they did not converge
    cuda_graph: bool = False
    graph_nms_rounds: int = 12  # an untrained SSD300, the worst case, needs 8-10
    save_folder: str = "weights/run"
    checkpoint_every: int = 5000
    keep_checkpoints: int = 3
    eval_every: int = 10000
    eval_limit: int = 0
    log_every: int = 10
    max_bad_steps: int = 5
    visdom: bool = False
    tensorboard: bool = True

    @property
    def num_classes(self) -> int:
        """Classes including background (index 0)."""
        return len(self.labels) + 1

    @property
    def prior_family(self) -> str:
        return "coco" if self.dataset.upper() == "COCO" else "voc"

    def priors(self) -> dict:
        return dict(PRIORS[(self.prior_family, self.size)])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


# Per-dataset defaults applied before the command line.
DATASET_DEFAULTS = {
    "VOC": dict(dataset_root="~/data/VOCdevkit", sets=["2007:trainval", "2012:trainval"], test_sets=["2007:test"],
                labels=list(VOC_CLASSES)),
    "COCO": dict(dataset_root="~/data/coco", sets=["train2017"], test_sets=["val2017"], labels=list(COCO_CLASSES),
                 lr_steps=[280000, 360000], max_iter=400000),
    # The built-in synthetic set: no download and no pretrained weights, so the BatchNorm variant from scratch
    # with a short schedule.
    "shapes": dict(dataset_root="", sets=["train"], test_sets=["test"], labels=list(SHAPES_CLASSES),
                   batch_norm=True, basenet="none", lr=1e-2, warmup_iters=300, max_iter=6000,
                   lr_steps=[4000, 5200], checkpoint_every=1000, eval_every=2000, eval_limit=0),
}


def config_for(dataset: str, **overrides) -> Config:
    """Defaults for a dataset, then `overrides` (keys of Config; None values are ignored)."""
    if dataset not in DATASET_DEFAULTS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASET_DEFAULTS)}")
    values = {k: v for k, v in DATASET_DEFAULTS[dataset].items() if v is not None}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Config(dataset=dataset, **values)
