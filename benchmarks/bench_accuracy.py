"""Accuracy at equal budget: our SSD trained from scratch through `engine.Trainer` (train.py's own loop) beside
torchvision's detection model of the same architecture, trained in the same process, both scored by the same devkit
scorer (VOC07 AP) on the same test images.

    python -m benchmarks.bench_accuracy --dataset VOC --dataset-root DIR --class-names RBC WBC Platelets --budget 17000
    python -m benchmarks.bench_accuracy                      # the built-in shapes set
    python -m benchmarks.bench_accuracy --arch vgg16 ...     # our SSD300 (BatchNorm) beside ssd300_vgg16

Set-ups (both by default, `--setups a b`):
  a  the same augmented image stream: every batch of our loader trains ours, then torchvision's model (converted to
     its input format and box convention), with the same SGD settings and schedule, so the difference is network,
     head, loss and post-processing;
  b  each with its own recipe: ours as in (a); torchvision's model with its reference recipe (its augmentation from
     torchvision.transforms.v2, optimizer, schedule, learning rate scaled linearly to --batch-size), so the
     difference includes augmentation and schedule.
The budget (images seen) is the same for every model: --budget / --batch-size iterations. `--evals N` scores every
model N times along the way (the curve; `--curve FILE.png` draws it). Seeds run one after the other; to use two
cores run one process per seed with OMP_NUM_THREADS=1 and `--json` each, then `--combine A.json B.json`.
`--ours-from A.json` takes ours's rows from an earlier run of the same recipe, data and budget (`--setups ours`)
instead of training ours again; set-up (a) still draws its batches from our loader, whose stream depends on the seed
alone, so torchvision sees the very batches ours was trained on.
Prints one Markdown table (mean over seeds, the spread in brackets) and writes it as JSON (`--json`).
"""
import json
import logging
import math
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torchvision
from torchvision import tv_tensors
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.transforms import v2
from tqdm import tqdm

from benchmarks.common import device_name
from config import Config, RunConfig
from config_flags import add_flags
from config_resolve import resolve
from data import DatasetError, build_dataset, train_loader
from data.loader import TrainSampler
from engine import Trainer, evaluate, evenly_spaced
from engine.detector import autocast
from engine.trainer import lr_factor
from utils.checkpoint import WeightsError
from utils.cli import Parser, add_device_flag
from utils.distributed import cap_workers, resolve_device
from utils.errors import ConfigError

log = logging.getLogger("ssd")

# Our recipe per architecture, from scratch: the train.py flags the table's "ours" rows ran (printed with it).
OURS = {
    "mobilenet_v3": dict(backbone="mobilenet_v3", basenet="none", lr=0.025, warmup_iters=100),
    "vgg16": dict(backbone="vgg16", size=300, batch_norm=True, basenet="none", lr=1e-2, warmup_iters=300),
}
LR_STEPS = (0.76, 0.9)  # fractions of the schedule where ours (and torchvision in set-up a) divide the LR by 10
# torchvision's reference recipes (references/detection/README.md): SGD momentum 0.9; LR for a total batch.
TORCHVISION = {
    "mobilenet_v3": dict(build="ssdlite320_mobilenet_v3_large", lr=0.15, lr_batch=192, weight_decay=4e-5,
                         schedule="cosine", augmentation="ssdlite"),
    "vgg16": dict(build="ssd300_vgg16", lr=0.002, lr_batch=32, weight_decay=5e-4, schedule="multistep",
                  augmentation="ssd"),
}


# the flags this benchmark shares with train.py, from the one vocabulary; this benchmark's own defaults beside
SHARED_DEFAULTS = {"dataset": "shapes", "dataset_root": "", "class_names": None, "sets": None, "test_sets": None,
                   "batch_size": 16, "workers": 1, "eval_limit": 0, "amp": RunConfig.amp}


def parse_args(argv=None):
    p = Parser(__doc__)
    p.add_argument("--arch", choices=sorted(OURS), default="mobilenet_v3")
    add_flags(p, list(SHARED_DEFAULTS), Config(), shown={
        "dataset": "shapes", "dataset_root": "none", "sets": "trainval, or the dataset's default",
        "test_sets": "test, or the dataset's default", "batch_size": 16, "workers": "1 per model's loader",
        "eval_limit": "0: every test image", "amp": f"{RunConfig.amp}, for both models"})
    add_device_flag(p)
    p.add_argument("--budget", type=int, default=17000, help="training images per model")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--setups", nargs="+", choices=["a", "b", "ours"], default=["a", "b"],
                   help="'ours' alone: train ours only (with --ablation: what a change of recipe gives)")
    p.add_argument("--ablation", choices=sorted(ABLATIONS), help="train ours with this change of its defaults")
    p.add_argument("--torchvision-priors", choices=["own", "fitted"], default="own",
                   help="torchvision's anchors: its own, or the sizes and aspect ratios our run fitted (--priors auto) "
                        "given to its DefaultBoxGenerator(scales=...)")
    p.add_argument("--evals", type=int, default=3, help="evaluations along the way, the last at the end")
    p.add_argument("--shapes-images", type=int, nargs=2, default=[2000, 200], metavar=("TRAIN", "TEST"))
    p.add_argument("--output", help="folder for the runs (default: a temporary folder, removed afterwards)")
    p.add_argument("--json", help="write the results (every seed, every evaluation) to this JSON file")
    p.add_argument("--curve", help="draw mAP against images seen, every model and seed, into this PNG")
    p.add_argument("--combine", nargs="+", metavar="JSON", help="print one table from earlier --json files")
    p.add_argument("--ours-from", nargs="+", metavar="JSON",
                   help="ours's rows from earlier --json files of the same recipe, data and budget: ours is not "
                        "trained again")
    args = p.parse_args(argv)
    for key, default in SHARED_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, default)
    try:
        args.device = str(resolve_device(args.device))
    except ConfigError as exc:
        p.error(str(exc))
    return args


def ours_config(args, seed: int, output: str):
    iterations = max(1, args.budget // args.batch_size)
    flags = dict(OURS[args.arch], dataset=args.dataset, batch_size=args.batch_size, max_iter=iterations,
                 lr_steps=[max(1, round(f * iterations)) for f in LR_STEPS],
                 warmup_iters=min(OURS[args.arch]["warmup_iters"], iterations // 4), seed=seed, workers=args.workers,
                 amp=args.amp,
                 output=output, checkpoint_every=0, eval_every=0, final_eval=False, tensorboard=False,
                 log_every=max(1, iterations // 20), eval_limit=args.eval_limit, metric="voc07")
    if isinstance(ABLATIONS.get(args.ablation), dict):
        if args.arch != "mobilenet_v3":
            raise ConfigError(f"--ablation {args.ablation}: for --arch mobilenet_v3 only")
        flags.update(ABLATIONS[args.ablation])
    if args.dataset == "shapes":
        flags.update(shapes_train_images=args.shapes_images[0], shapes_test_images=args.shapes_images[1])
    else:
        flags.update(dataset_root=args.dataset_root, class_names=args.class_names,
                     sets=args.sets or (["trainval"] if args.dataset == "VOC" else None),
                     test_sets=args.test_sets or (["test"] if args.dataset == "VOC" else None))
    return resolve(flags)


def train_py_command(cfg) -> str:
    """The train.py command line of our rows (the dataset's own flags aside)."""
    keys = ("backbone", "basenet", "batch_norm", "priors", "min_sizes", "batch_size", "lr", "warmup_iters", "max_iter",
            "lr_steps", "amp")
    parts = []
    for key in keys:
        value = cfg.setting(key)
        if key == "batch_norm":
            parts.append("--batch-norm" if value and cfg.model.backbone == "vgg16" else "")
            continue
        if value == () or (key in ("priors", "amp") and value == Config().setting(key)):
            continue
        value = " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) if isinstance(value, tuple) \
            else value
        parts.append(f"--{key.replace('_', '-')} {value}")
    return "python train.py " + " ".join(p for p in parts if p)


def kaiming_xavier_init(trainer):
    """The SSDLite initialisation before torchvision's N(0, 0.03): the backbone's Kaiming fan-out convolutions
    with BatchNorm momentum 0.01 (torchvision's MobileNetV3 classifier defaults), Xavier extras and heads."""
    model = trainer.model
    if not hasattr(model, "stage4"):
        raise ConfigError("--ablation kaiming-xavier-init: for --arch mobilenet_v3 only")
    for part in (model.stage4, model.stage5):
        for m in part.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 0.01
    for part in (model.extras, model.loc, model.conf):
        for m in part.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.xavier_uniform_(m.weight)


def other_matching(trainer):
    """The matching SSDLite's default is not: Caffe's greedy bipartite step instead of the best prior per object
    (for --arch vgg16 the other way round)."""
    trainer.criterion.matching = "bipartite" if trainer.cfg.solver.matching == "best-prior" else "best-prior"


# --ablation NAME: a function edits the built trainer; a dict of settings goes into ours's config.
ABLATIONS = {"kaiming-xavier-init": kaiming_xavier_init, "other-matching": other_matching,
             # SSDLite's prior scales from 0.1 instead of 0.2 of 320 px: the paper's s_k with s_min 0.1, s_max 0.95
             "small-priors": dict(min_sizes=(32, 86.4, 140.8, 195.2, 249.6, 304))}


# --- torchvision's model -------------------------------------------------------------------------------------------

def torchvision_model(arch: str, num_classes: int, seed: int, layout: dict = None):
    """torchvision's model from scratch; `layout` (our prior layout, PriorBox keys): its anchors made of the same
    sizes and aspect ratios through its own DefaultBoxGenerator(scales=...), with as many per location."""
    torch.manual_seed(seed)
    build = getattr(torchvision.models.detection, TORCHVISION[arch]["build"])
    model = build(weights=None, weights_backbone=None, num_classes=num_classes)
    if layout is not None:
        generator = DefaultBoxGenerator([list(r) for r in layout["aspect_ratios"]],
                                        scales=[s / layout["min_dim"] for s in layout["min_sizes"]]
                                        + [layout["max_sizes"][-1] / layout["min_dim"]])
        if generator.num_anchors_per_location() != model.anchor_generator.num_anchors_per_location():
            raise ConfigError("--torchvision-priors fitted: the fitted layout has another number of priors per "
                              "location than torchvision's model")
        model.anchor_generator = generator
    return model


def to_torchvision(images: torch.Tensor, targets: torch.Tensor, device) -> tuple:
    """Our batch (uint8 BGR [B, 3, S, S], targets [B, N, 5] in [0, 1] padded with label -1) -> torchvision's
    input: RGB float images in [0, 1] and targets with boxes in pixels and labels counted from 1 (0: background).
    Boxes without area at this size (torchvision refuses them) are left out."""
    size = images.shape[-1]
    images = images.to(device).flip(1).float().div_(255)
    converted = []
    for target in targets.to(device):
        keep = target[:, 4] >= 0
        boxes = target[keep, :4] * size
        keep_area = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        converted.append({"boxes": boxes[keep_area], "labels": target[keep, 4][keep_area].long() + 1})
    return list(images), converted


class TorchvisionRun:
    """torchvision's model with SGD: `step(images, targets)` on its own input format."""

    def __init__(self, arch: str, num_classes: int, seed: int, device, lr: float, weight_decay: float, factor,
                 layout: dict = None, amp: str = "off"):
        self.model = torchvision_model(arch, num_classes, seed, layout).to(device)
        self.amp = amp
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        self.seconds = 0.0

    def step(self, images: list, targets: list):
        start = time.perf_counter()
        self.model.train()
        with autocast(images[0].device, self.amp):
            losses = self.model(images, targets)
        loss = sum(losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.seconds += time.perf_counter() - start


def reference_factor(arch: str, iterations: int, iterations_per_epoch: int):
    """torchvision's reference schedule over `iterations`: a linear warm-up over the first epoch (from 1/1000,
    at most 1000 iterations), then cosine to 0 (SSDLite) or /10 at 2/3 and 11/12 of the schedule (SSD300: epochs
    80 and 110 of 120)."""
    warmup = max(1, min(1000, iterations_per_epoch - 1))

    def factor(it: int) -> float:
        w = 1.0 / 1000 + (1 - 1.0 / 1000) * it / warmup if it < warmup else 1.0
        if TORCHVISION[arch]["schedule"] == "cosine":
            return w * 0.5 * (1 + math.cos(math.pi * it / iterations))
        return w * 0.1 ** sum(it >= round(f * iterations) for f in (2 / 3, 11 / 12))
    return factor


class ReferenceDataset(torch.utils.data.Dataset):
    """A source's images through torchvision's reference augmentation ("ssdlite": IoU crop + flip; "ssd":
    photometric distortion, zoom out, IoU crop, flip), as torchvision.transforms.v2 runs it."""

    def __init__(self, source, augmentation: str, use_difficult: bool):
        self.source, self.use_difficult = source, use_difficult
        steps = [v2.RandomPhotometricDistort(), v2.RandomZoomOut(fill={tv_tensors.Image: (123, 117, 104),
                                                                      "others": 0})] if augmentation == "ssd" else []
        self.transform = v2.Compose(steps + [v2.RandomIoUCrop(), v2.RandomHorizontalFlip(),
                                             v2.ToDtype(torch.float32, scale=True), v2.SanitizeBoundingBoxes()])

    def __len__(self):
        return len(self.source)

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else key
        image, boxes, labels, difficult = self.source.load(index)
        if not self.use_difficult:
            boxes, labels = boxes[~difficult], labels[~difficult]
        image = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image[..., ::-1])).permute(2, 0, 1))
        target = {"boxes": tv_tensors.BoundingBoxes(torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                                    format="XYXY", canvas_size=image.shape[-2:]),
                  "labels": torch.as_tensor(labels, dtype=torch.int64) + 1}
        return self.transform(image, target)


def torchvision_layout(args, cfg):
    """--torchvision-priors fitted: our run's prior layout (fitted with --priors auto) for torchvision's anchors."""
    return cfg.model.prior_layout if args.torchvision_priors == "fitted" else None


def precision_note(amp: str) -> str:
    """What a row's name adds for its precision (float32 rows say nothing)."""
    return "" if amp == "off" else f", {amp}"


def torchvision_name(args, amp: str) -> str:
    return f"torchvision {TORCHVISION[args.arch]['build']}" + (", our fitted priors" if args.torchvision_priors ==
                                                               "fitted" else "") + precision_note(amp)


def train_torchvision_own(args, cfg, source, seed: int, device, amp: str, on_iteration) -> TorchvisionRun:
    """Set-up (b): torchvision's model with its reference recipe, on its own loader, for cfg.solver.max_iter steps;
    `on_iteration(run, iteration)` after each (not timed)."""
    recipe = TORCHVISION[args.arch]
    factor = reference_factor(args.arch, cfg.solver.max_iter, max(1, len(source) // cfg.solver.batch_size))
    lr = recipe["lr"] * cfg.solver.batch_size / recipe["lr_batch"]
    run = TorchvisionRun(args.arch, cfg.model.num_classes, seed, device, lr,
                         recipe["weight_decay"], factor, torchvision_layout(args, cfg), amp)
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        ReferenceDataset(source, recipe["augmentation"], cfg.data.train_difficult), batch_size=cfg.solver.batch_size,
        sampler=TrainSampler(len(source), seed), num_workers=cfg.data.workers, drop_last=True,
        collate_fn=lambda batch: tuple(zip(*batch)), persistent_workers=cfg.data.workers > 0)
    batches = iter(loader)
    for iteration in tqdm(range(1, cfg.solver.max_iter + 1), desc="torchvision (b)"):
        start = time.perf_counter()
        images, targets = next(batches)
        run.seconds += time.perf_counter() - start
        run.step([i.to(device) for i in images], [{k: v.to(device) for k, v in t.items()} for t in targets])
        on_iteration(run, iteration)
    return run


# --- scoring -------------------------------------------------------------------------------------------------------

class TorchvisionDetector:
    """torchvision's model as a detector of our eval batches, called as engine.evaluate calls ours:
    (uint8 BGR images, sizes) -> [{boxes (pixels), scores, labels (from 0)}]."""
    runtime = "torchvision"

    def __init__(self, model):
        self.model, self.seconds = model, {}

    def __call__(self, images: torch.Tensor, sizes: torch.Tensor, to="cpu") -> list:
        size = images.shape[-1]
        device = next(self.model.parameters()).device
        with torch.no_grad():
            outputs = self.model(list(images.to(device).flip(1).float().div_(255)))
        results = []
        for out, (height, width) in zip(outputs, sizes.tolist()):
            scale = torch.tensor([width, height, width, height], dtype=torch.float32) / size
            results.append({"boxes": out["boxes"].cpu() * scale, "scores": out["scores"].cpu(),
                            "labels": out["labels"].cpu() - 1})
        return results


def score(model, cfg, source, device, detector=None) -> dict:
    """Devkit AP (VOC07, every format) of `model` on cfg's test images through engine.evaluate, eval.py's own path
    (`detector`: torchvision's model; None: ours through engine.Detector)."""
    metrics = evaluate(model, cfg.replace(workers=0), source, device, detector=detector)
    ids = sorted(source.image_id(i) for i in evenly_spaced(len(source), cfg.test.eval_limit))
    return {"mAP": metrics["mAP"], "AP": metrics["AP"], "image_ids": ids}


# --- one seed ------------------------------------------------------------------------------------------------------

def run_seed(args, seed: int, folder: str, device, earlier: dict = None) -> list:
    """Every model of the chosen set-ups for one seed -> a list of row records. `earlier`: ours's row for this
    seed from an earlier run of the same recipe, data and budget; ours is then not trained again."""
    cfg = ours_config(args, seed, os.path.join(folder, f"ours-seed{seed}"))
    trainer = Trainer(cfg, device=device)
    cfg = trainer.cfg
    if callable(ABLATIONS.get(args.ablation)):
        with torch.no_grad():
            ABLATIONS[args.ablation](trainer)
    source = build_dataset(cfg, train=False).source
    eval_at = sorted({max(1, round(cfg.solver.max_iter * (k + 1) / args.evals)) for k in range(args.evals)})
    common = dict(seed=seed, images_seen=cfg.solver.max_iter * cfg.solver.batch_size, iterations=cfg.solver.max_iter,
                  batch_size=cfg.solver.batch_size, precision=trainer.amp)
    rows = [ours_row(args, cfg, trainer.amp, common, earlier, seed)]
    tv_a = None
    if "a" in args.setups:
        tv_a = TorchvisionRun(args.arch, cfg.model.num_classes, seed, device, cfg.solver.lr_for(cfg.solver.batch_size),
                              cfg.solver.weight_decay, lambda it: lr_factor(cfg, it), torchvision_layout(args, cfg),
                              trainer.amp)
        rows.append(dict(common, setup="a", model=torchvision_name(args, trainer.amp),
                         recipe="ours (same batches, SGD settings and schedule)", curve=[]))
    train_side_by_side(trainer, tv_a, rows, eval_at, source, device, retrain=earlier is None)
    if "b" in args.setups:
        rows.append(setup_b_row(args, trainer, common, eval_at, source, device))
    for row in rows:
        row.update(final=row["curve"][-1], train_img_s=row["images_seen"] / max(row["train_s"], 1e-9))
    return rows


def ours_row(args, cfg, amp: str, common: dict, earlier: dict, seed: int) -> dict:
    """Our row, empty to be trained, or `earlier`'s when it was trained with the same recipe, data and budget."""
    name = f"ours ({cfg.model.backbone}{', ' + args.ablation if args.ablation else ''}{precision_note(amp)})"
    setup = "+".join(s for s in ("a", "b") if s in args.setups) or "ours"
    if earlier is None:
        return dict(common, setup=setup, model=name, recipe=train_py_command(cfg), curve=[])
    if (earlier["model"], earlier["recipe"], earlier["images_seen"]) != (name, train_py_command(cfg),
                                                                         common["images_seen"]):
        raise ConfigError(f"--ours-from: seed {seed} was {earlier['model']}, {earlier['recipe']}, "
                          f"{earlier['images_seen']} images; this run is {name}, {train_py_command(cfg)}, "
                          f"{common['images_seen']} images")
    return dict(earlier, setup=setup)


def train_side_by_side(trainer, tv_a, rows: list, eval_at: list, source, device, retrain: bool):
    """Our Trainer (unless `retrain` is off) and set-up (a), when chosen, on the very same batches, each scored at
    the `eval_at` iterations into its row's curve; each row's training seconds exclude the other's steps."""
    cfg, seed = trainer.cfg, trainer.cfg.run.seed

    def on_batch(iteration: int, batch):
        if tv_a is not None:
            tv_a.step(*to_torchvision(batch.images, batch.targets, device))
        if iteration not in eval_at:
            return
        if retrain:
            point = score(trainer.model, cfg, source, device)
            rows[0]["curve"].append(dict(point, images_seen=iteration * cfg.solver.batch_size))
            log.info("seed %d iteration %d: ours mAP %.4f", seed, iteration, point["mAP"])
        if tv_a is not None:
            point = score(tv_a.model, cfg, source, device, TorchvisionDetector(tv_a.model))
            rows[1]["curve"].append(dict(point, images_seen=iteration * cfg.solver.batch_size))
            log.info("seed %d iteration %d: torchvision (a) mAP %.4f", seed, iteration, point["mAP"])

    if retrain:
        clock = {"last": None, "ours": 0.0, "start": time.perf_counter()}  # ours: between two hook calls

        def on_step(t, batch):
            clock["ours"] += time.perf_counter() - (clock["last"] or clock["start"])
            on_batch(t.iteration, batch)
            clock["last"] = time.perf_counter()

        trainer.train(on_step=on_step)
        rows[0]["train_s"] = clock["ours"]
    elif tv_a is not None:
        loader = train_loader(trainer.dataset, cfg.solver.batch_size, cfg.data.workers, seed, pin_memory=False)
        for iteration, batch in zip(tqdm(range(1, cfg.solver.max_iter + 1), desc="torchvision (a)"), loader):
            on_batch(iteration, batch)
    if tv_a is not None:
        rows[1]["train_s"] = tv_a.seconds


def setup_b_row(args, trainer, common: dict, eval_at: list, source, device) -> dict:
    """Set-up (b): torchvision's model with its own reference recipe on the same training images."""
    cfg = trainer.cfg
    row = dict(common, setup="b", model=torchvision_name(args, trainer.amp),
               recipe=f"torchvision reference ({TORCHVISION[args.arch]['augmentation']} augmentation, "
                      f"{TORCHVISION[args.arch]['schedule']} LR)", curve=[])

    def on_iteration(run, iteration):
        if iteration in eval_at:
            point = score(run.model, cfg, source, device, TorchvisionDetector(run.model))
            row["curve"].append(dict(point, images_seen=iteration * cfg.solver.batch_size))
            log.info("seed %d iteration %d: torchvision (b) mAP %.4f", cfg.run.seed, iteration, point["mAP"])

    row["train_s"] = train_torchvision_own(args, cfg, trainer.train_source, cfg.run.seed, device, trainer.amp,
                                           on_iteration).seconds
    return row


# --- the table -----------------------------------------------------------------------------------------------------

def spread(values: list, digits: int = 3) -> str:
    """mean (min-max) of the seeds' values; just the value for one seed."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "-"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def merge_ours(rows: list) -> list:
    """One row for ours per seed and recipe: runs of set-up (a) alone and (b) alone (with --ours-from the same
    earlier run of ours) each carry ours's row; they become one row of set-up a+b."""
    merged, out = {}, []
    for row in rows:
        if not row["model"].startswith("ours"):
            out.append(row)
            continue
        key = (row["seed"], row["model"], row["recipe"], row["images_seen"], row["final"]["mAP"])
        if key in merged:
            first = merged[key]
            setups = set(first["setup"].split("+")) | set(row["setup"].split("+"))
            first["setup"] = "+".join(s for s in ("a", "b") if s in setups) or "ours"
        else:
            merged[key] = dict(row)
            out.append(merged[key])
    return out


def table(rows: list) -> str:
    """One Markdown row per (set-up, model), the seeds' mean and range; the ratio of mAP means, ours over
    torchvision, in each torchvision row."""
    groups = {}
    for row in rows:
        groups.setdefault((row["setup"], row["model"]), []).append(row)
    classes = list(rows[0]["final"]["AP"])
    lines = ["| set-up | model | seeds | images seen | train min | train img/s | "
             + " | ".join(f"AP {c}" for c in classes) + " | mAP07 | ours / torchvision |",
             "|" + "---|" * (8 + len(classes))]
    ours_map = {}
    for (setup, model), group in groups.items():
        maps = [r["final"]["mAP"] for r in group]
        mean_map = sum(maps) / len(maps)
        if model.startswith("ours"):
            for s in setup.split("+"):
                ours_map[s] = mean_map
            ratio = ""
        else:
            ratio = f"{ours_map[setup] / mean_map:.2f}x" if mean_map > 0 and setup in ours_map else "-"
        lines.append(f"| {setup} | {model} | {','.join(str(r['seed']) for r in group)} | {group[0]['images_seen']} | "
                     f"{spread([r['train_s'] / 60 for r in group], 1)} | "
                     f"{spread([r['train_img_s'] for r in group], 1)} | "
                     + " | ".join(spread([r["final"]["AP"][c] for r in group]) for c in classes)
                     + f" | {spread(maps)} | {ratio} |")
    return "\n".join(lines)


def draw_curve(rows: list, path: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        xs = [p["images_seen"] for p in row["curve"]]
        ys = [p["mAP"] for p in row["curve"]]
        colour = "tab:blue" if row["model"].startswith("ours") else ("tab:orange" if row["setup"] == "a"
                                                                     else "tab:green")
        ax.plot(xs, ys, "--" if row["setup"] == "b" else "-", marker="o", color=colour,
                label=f"{row['model']}, set-up {row['setup']}, seed {row['seed']}")
    ax.set_xlabel("training images seen")
    ax.set_ylabel("mAP07 (test set)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_json(path: str, header: str, rows: list):
    with open(path, "w") as f:
        json.dump({"header": header, "rows": rows}, f, indent=1)


def ours_rows(paths: list, header: str) -> dict:
    """{seed: ours's row} from earlier --json files of the same architecture, data and budget."""
    rows = {}
    for path in paths:
        try:
            with open(path) as f:
                record = json.load(f)
            theirs, found = record["header"].split(";")[0], {row["seed"]: row for row in record["rows"]
                                                              if row["model"].startswith("ours")}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"--ours-from {path}: not a --json file of this benchmark ({exc})") from None
        if theirs != header.split(";")[0]:
            raise ConfigError(f"--ours-from {path}: another run ({theirs}); this one is {header.split(';')[0]}")
        rows.update(found)
    return rows


def main(argv=None):
    args = parse_args(argv)
    if not args.combine and (args.budget < args.batch_size or args.batch_size < 2):
        print(f"error: --budget {args.budget} --batch-size {args.batch_size}: the budget is the training images per "
              f"model, at least one batch of at least 2 images", file=sys.stderr)
        raise SystemExit(2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    args.workers = cap_workers(args.workers)
    if args.combine:
        records = [json.load(open(path)) for path in args.combine]
        rows = merge_ours([row for record in records for row in record["rows"]])
        header = records[0]["header"]
    else:
        device = torch.device(args.device)
        header = (f"{args.arch} from scratch, {args.dataset} {args.dataset_root}, budget {args.budget} images at "
                  f"batch {args.batch_size}; {device_name(device)}, {torch.get_num_threads()} thread(s), "
                  f"{args.workers} loader worker(s) per model; torch {torch.__version__}, torchvision "
                  f"{torchvision.__version__}; {time.strftime('%Y-%m-%d')}")
        rows = []
        try:
            earlier = ours_rows(args.ours_from, header) if args.ours_from else {}
            with tempfile.TemporaryDirectory() as scratch:
                for seed in args.seeds:
                    if args.ours_from and seed not in earlier:
                        raise ConfigError(f"--ours-from: no row of ours for seed {seed} in {' '.join(args.ours_from)}")
                    rows += run_seed(args, seed, args.output or scratch, device, earlier.get(seed))
                    if args.json:  # after every seed: an hour's work survives a later failure
                        write_json(args.json, header, rows)
        except (ConfigError, DatasetError, WeightsError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    print(f"\n{header}")
    print(table(rows))
    for row in rows:
        if row["model"].startswith("ours"):
            print(f"ours, seed {row['seed']}: {row['recipe']}")
            break
    if args.json:
        write_json(args.json, header, rows)
        print(f"results: {args.json}")
    if args.curve:
        draw_curve(rows, args.curve)
        print(f"curve: {args.curve}")


if __name__ == "__main__":
    main()
