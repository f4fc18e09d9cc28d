"""Train SSD300/SSD512 on VOC, COCO, your own VOC-style or COCO-format data, or the built-in `shapes` set.

    python train.py                                          # shapes; on a CPU: a 5-minute pipeline check
    python train.py --dataset VOC --dataset-root ~/data/VOCdevkit --amp bf16
    torchrun --nproc_per_node=4 train.py --dataset VOC ...  # multi-GPU (DistributedDataParallel)
    python train.py --resume auto                            # continue the newest run under runs/

Every run writes into its own folder (default runs/<dataset>-<size>-<date-time>). Every default lives in
config.py; flags override it. See README.md for the full manual.
"""
import logging
import math
import os
import signal
import sys
import time
import warnings
from datetime import datetime

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from config import (
    CPU_CHECK,
    SCHEDULE_KEYS,
    Config,
    ConfigError,
    Parser,
    add_flags,
    changed_settings,
    check_model_flags,
    chosen_dataset,
    config_for,
    flags_given,
    resolve,
)
from data import DatasetError, as_model_input, build_dataset, build_source, objects_for_training, train_loader
from engine import AMP_DTYPES, evaluate, format_ap_table
from layers import MultiBoxLoss
from models import build_model, load_backbone
from models.weights import weights_format
from utils.checkpoint import (
    WeightsError,
    atomic_save,
    is_full_checkpoint,
    latest_checkpoint,
    read_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from utils.distributed import cleanup, describe_device, init_distributed, usable_cores
from utils.logger import MetricsLogger

log = logging.getLogger("ssd")
# A skipped (non-finite) step still advances the LR schedule on purpose, so the schedule stays a function of the
# iteration; torch warns when that happens before the first optimizer step.
warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before `optimizer.step\(\)`")

TRAIN_KEYS = ("dataset", "dataset_root", "sets", "test_sets", "labels", "backbone", "size", "batch_norm", "basenet",
              "batch_size", "lr", "momentum", "weight_decay", "caffe_biases", "lr_steps", "gamma", "warmup_iters",
              "max_iter", "workers", "seed", "output", "checkpoint_every", "keep_checkpoints", "eval_every",
              "eval_limit", "final_eval", "amp", "channels_last", "compile", "augment", "photometric",
              "train_difficult", "visdom", "tensorboard", "log_every", "max_bad_steps", "shapes_train_images",
              "shapes_test_images")
RUNS_ROOT = "runs"


def parse_args(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    dataset = chosen_dataset(argv, "shapes")
    p = Parser(__doc__)
    add_flags(p, TRAIN_KEYS, config_for(dataset), shown={"output": f"{RUNS_ROOT}/<dataset>-<size>-<date-time>"})
    p.add_argument("--resume", metavar="auto|FOLDER|FILE",
                   help="continue a run: 'auto' = the newest run (in --output when given), a run folder (its newest "
                        "checkpoint), or a checkpoint file; its settings come back, flags given again win")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: auto = cuda when available)")
    return p.parse_args(argv)


def find_resume(resume: str, output: str = None):
    """--resume auto|FOLDER|FILE -> a checkpoint path, or None for 'auto' with nothing to continue."""
    if resume == "auto":
        if output:
            folders = [output]
        else:
            folders = sorted((os.path.join(RUNS_ROOT, d) for d in os.listdir(RUNS_ROOT)) if os.path.isdir(RUNS_ROOT)
                             else [], key=os.path.getmtime, reverse=True)
        for folder in folders:
            found = run_checkpoint(folder)
            if found:
                return found
        return None
    if os.path.isdir(resume):
        found = run_checkpoint(resume)
        if found is None:
            raise WeightsError(f"{resume}: no ckpt_*.pth or final.pth in this folder to resume from")
        return found
    return resume


def run_checkpoint(folder: str):
    """A run folder's newest full checkpoint, else its final.pth, else None."""
    found = latest_checkpoint(folder)
    if found is None and os.path.isfile(os.path.join(folder, "final.pth")):
        found = os.path.join(folder, "final.pth")
    return found


def default_output(cfg: Config) -> str:
    return os.path.join(RUNS_ROOT, f"{cfg.dataset.lower()}-{cfg.size}-{datetime.now():%Y%m%d-%H%M%S}")


def check_fresh_folder(folder: str):
    """A new run never writes into another run's folder."""
    if os.path.isdir(folder) and any(name.startswith("ckpt_") or name in ("final.pth", "metrics.jsonl")
                                     for name in os.listdir(folder)):
        raise ConfigError(f"--output {folder}: holds another run; continue it with --resume {folder}, or choose "
                          f"another --output")


def lr_factor(cfg: Config, iteration: int) -> float:
    warmup = min(1.0, (iteration + 1) / cfg.warmup_iters) if cfg.warmup_iters > 0 else 1.0
    return warmup * cfg.gamma ** sum(iteration >= step for step in cfg.lr_steps)


def parameters_checksum(model) -> torch.Tensor:
    return torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()


def initial_model(cfg: Config, checkpoint: dict = None):
    """-> (model, cfg with the pixel format of the weights used). From a checkpoint: its weights (and format);
    else the backbone weights of cfg.basenet, or from scratch with standardised input (what the initialisation
    assumes) instead of caffe's unscaled 0..255."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    if checkpoint is None:
        pixel_format = "torchvision" if cfg.basenet.lower() == "none" else load_backbone(model, cfg.basenet)
        cfg = cfg.replace(pixel_format=pixel_format)
        model.set_pixel_format(pixel_format)
        log.info("network: %s SSD%d; backbone weights: %s (%s input format)", cfg.backbone, cfg.size, cfg.basenet,
                 cfg.pixel_format)
        return model, cfg
    model.load_state_dict(checkpoint["model"])
    return model, cfg


def build_optimizer(model, cfg: Config, total_batch: int):
    """SGD at the learning rate scaled to `total_batch`; with cfg.caffe_biases, biases at 2x and without decay.
    Fused, so that GradScaler can skip a non-finite step on the device (`guarded_step`)."""
    lr = cfg.lr_for(total_batch)
    if cfg.caffe_biases:
        biases = [p for name, p in model.named_parameters() if name.endswith(".bias")]
        others = [p for name, p in model.named_parameters() if not name.endswith(".bias")]
        groups = [dict(params=others), dict(params=biases, lr=2 * lr, weight_decay=0.0)]
    else:
        groups = [dict(params=list(model.parameters()))]
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=True)
    # With momentum buffers still unset, a skipped first step would leave them uninitialised (torch allocates
    # them before it reads `found_inf`); zeros make the first real step the same as with unset buffers.
    for p in model.parameters() if cfg.momentum else ():
        optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return optimizer


def build_scaler(cfg: Config, device: torch.device) -> torch.amp.GradScaler:
    """fp16: the usual dynamic loss scale. Otherwise a scaler held at 1 (`guarded_step`), kept for what it does on
    every step: it finds non-finite gradients and has the fused optimizer skip its step on the device."""
    return torch.amp.GradScaler(device.type, init_scale=2.0 ** 16 if cfg.amp == "fp16" else 1.0)


def guarded_step(loss: torch.Tensor, finite: torch.Tensor, optimizer, scaler: torch.amp.GradScaler,
                 dynamic_scale: bool):
    """Backward and an optimizer step that a non-finite loss skips, without a host sync: the loss times NaN (when
    `finite` is False) makes every gradient NaN, GradScaler finds them and hands the fused optimizer its
    `found_inf`, and the step (weights, momentum, weight decay) is skipped on the device. Without
    `dynamic_scale` the scale stays exactly 1, so the gradients are the plain ones, bit for bit."""
    scaler.scale(loss * torch.where(finite, 1.0, float("nan"))).backward()
    scaler.step(optimizer)
    if dynamic_scale:
        scaler.update()
    else:
        scaler.update(1.0)


def check_training_objects(cfg: Config, source):
    """Training on a set without any object of the label list is refused, naming what the annotations hold; a
    class without any object (a typo in one of several --labels) is one warning."""
    names = ", ".join(f"{name} ({count})" for name, count in source.names_found.most_common()) or "no objects at all"
    if objects_for_training(source, cfg.train_difficult) == 0:
        raise DatasetError(f"{source.name}: the training set holds no object of --labels {' '.join(cfg.labels)}"
                           + ("" if cfg.train_difficult else " (difficult ones excluded)")
                           + f"; its annotations name: {names}")
    table = getattr(source, "table", None)  # file-backed sources; shapes always has every class
    if table is not None:
        counts = np.bincount(table.labels, minlength=len(cfg.labels))
        empty = [name for name, count in zip(cfg.labels, counts) if count == 0]
        if empty:
            log.warning("%s: no training object of class(es) %s; the annotations name: %s", source.name, empty, names)


class Trainer:
    def __init__(self, cfg: Config, rank: int, world_size: int, device: torch.device, resume: str = None,
                 checkpoint: dict = None):
        """`checkpoint`: the state read from `resume` (a path) to continue from, or None. A checkpoint with
        weights only (final.pth, best.pth) continues from its weights with a fresh optimizer and schedule."""
        self.rank, self.world_size, self.device = rank, world_size, device
        self.main = rank == 0
        self.train_source = build_source(cfg, train=True)
        if cfg.dataset == "COCO":  # the classes are the annotation file's (COCO itself or a COCO-format set)
            cfg = cfg.replace(labels=tuple(self.train_source.class_names))
        elif self.train_source.class_names != list(cfg.labels):
            raise DatasetError(f"dataset classes {self.train_source.class_names} differ from --labels {cfg.labels}")
        check_training_objects(cfg, self.train_source)
        self.model, cfg = initial_model(cfg, checkpoint)
        self.cfg = cfg
        self.model.to(device)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if world_size > 1 and cfg.batch_norm and device.type == "cuda":  # SyncBatchNorm runs on GPUs only
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.optimizer = build_optimizer(self.model, cfg, cfg.batch_size * world_size)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda it: lr_factor(cfg, it))
        self.scaler = build_scaler(cfg, device)
        self.criterion = MultiBoxLoss.from_config(cfg, self.model.box_coder)
        self.iteration, self.best_map = 0, -1.0
        if checkpoint is not None and is_full_checkpoint(checkpoint):
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.scheduler.load_state_dict(checkpoint["scheduler"])
            self.scaler.load_state_dict(checkpoint["scaler"])
            self.iteration, self.best_map = checkpoint["iteration"], checkpoint["best_map"]
            if self.iteration >= cfg.max_iter:
                raise ConfigError(f"--resume {resume}: the run already reached iteration {self.iteration} of "
                                  f"--max-iter {cfg.max_iter}; pass a larger --max-iter to train further")
            set_rng_state(checkpoint["rng"])
            log.info("resumed from %s at iteration %d", resume, self.iteration)
        elif checkpoint is not None:
            self.iteration = checkpoint.get("iteration", 0)
            if self.iteration >= cfg.max_iter:
                raise ConfigError(f"--resume {resume}: its weights are at iteration {self.iteration}, the end of "
                                  f"the schedule (--max-iter {cfg.max_iter}); pass a larger --max-iter")
            self.scheduler.last_epoch = self.iteration
            log.warning("%s holds weights only: continuing from its weights at iteration %d with a fresh optimizer "
                        "(momentum) and RNG state; an exact resume needs a ckpt_*.pth of the run", resume,
                        self.iteration)
        self.net = self.model
        if world_size > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
        if cfg.compile:
            self.net = torch.compile(self.net)
        self.dataset = build_dataset(cfg, train=True, source=self.train_source)
        self.val_source = None
        if self.main and (cfg.eval_every > 0 or cfg.final_eval):
            self.val_source = build_source(cfg, train=False)
        self.logger = MetricsLogger(cfg.output, cfg.tensorboard, cfg.visdom) if self.main else None
        if self.main:
            self.write_problems()

    def write_problems(self):
        """Every per-file dataset problem, in the run folder (the log has one line per kind)."""
        path = os.path.join(self.cfg.output, "dataset_problems.txt")
        sources = [("training set", self.train_source), ("test set", self.val_source)]
        found = [(title, source.problems) for title, source in sources if source is not None and source.problems]
        if os.path.exists(path):
            os.remove(path)
        if found:
            for title, problems in found:
                problems.write(path, title)
            log.info("dataset problems, every file: %s", path)

    def state(self) -> dict:
        return {"config": self.cfg.to_dict(), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "iteration": self.iteration, "rng": rng_state(),
                "best_map": self.best_map}

    def save(self):
        if self.main:
            path = save_checkpoint(self.cfg.output, self.state(), self.cfg.keep_checkpoints)
            log.info("checkpoint: %s", path)

    def save_weights(self, name: str) -> str:
        """Weights + config only (what eval.py, detect.py and the notebook need), in the checkpoint format."""
        path = os.path.join(self.cfg.output, name)
        atomic_save({"config": self.cfg.to_dict(), "model": self.model.state_dict(), "iteration": self.iteration,
                     "best_map": self.best_map}, path)
        return path

    def validate(self, output: str = None):
        bar = lambda batches: tqdm(batches, desc=f"evaluating (iteration {self.iteration})", leave=False,
                                   dynamic_ncols=True)
        metrics = evaluate(self.model, self.cfg.replace(workers=min(self.cfg.workers, 4)), self.val_source,
                           self.device, output, progress=bar)
        self.logger.log(self.iteration, {"mAP": metrics["mAP"]}, kind="eval")
        log.info("iteration %d: validation %s mAP %.4f", self.iteration, metrics["metric"], metrics["mAP"])
        if not math.isnan(metrics["mAP"]) and metrics["mAP"] > self.best_map:
            self.best_map = metrics["mAP"]
            self.save_weights("best.pth")
        return metrics

    def step(self, images: torch.Tensor, targets: torch.Tensor):
        """One SGD step on a batch already on the device; no host synchronisation. A non-finite loss (on any
        rank) skips the update on the device. -> (loss_l, loss_c, finite) as device tensors."""
        with torch.autocast(self.device.type, dtype=AMP_DTYPES.get(self.cfg.amp), enabled=self.cfg.amp != "off"):
            loc, conf = self.net(images)
        loss_l, loss_c = self.criterion((loc, conf), targets)
        loss = loss_l + loss_c
        finite = torch.isfinite(loss.detach())
        if self.world_size > 1:  # every rank counts the step as skipped (the NaN gradients reach all of them)
            finite = finite.float()
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
            finite = finite.bool()
        self.optimizer.zero_grad(set_to_none=True)
        guarded_step(loss, finite, self.optimizer, self.scaler, dynamic_scale=self.cfg.amp == "fp16")
        self.scheduler.step()
        self.iteration += 1
        return loss_l.detach(), loss_c.detach(), finite

    def check_bad_steps(self, bad: dict):
        """Log the skipped steps counted on the device since the last check; stop after a run of
        `max_bad_steps` in a row. `bad`: {"count", "run", "longest"} device tensors, reset here."""
        count, longest = int(bad["count"]), int(bad["longest"])
        if count:
            log.warning("iterations up to %d: %d non-finite losses, steps skipped", self.iteration, count)
        if longest >= self.cfg.max_bad_steps:
            raise FloatingPointError(
                f"{longest} non-finite losses in a row before iteration {self.iteration}: lower --lr "
                f"(now {self.cfg.lr:g}), use more --warmup-iters (now {self.cfg.warmup_iters}), try --amp off or "
                f"bf16, and check the data with `python -m data.check`")
        bad["count"].zero_()
        bad["longest"].copy_(bad["run"])

    def train(self):
        cfg = self.cfg
        loader = train_loader(self.dataset, cfg.batch_size, cfg.workers, cfg.seed, self.rank, self.world_size,
                              self.iteration, pin_memory=self.device.type == "cuda")
        batches = iter(loader)
        # skipped-step bookkeeping stays on the device and is read at log, checkpoint and eval points only
        bad = {k: torch.zeros((), dtype=torch.long, device=self.device) for k in ("count", "run", "longest")}
        self.net.train()
        bar = tqdm(total=cfg.max_iter, initial=self.iteration, disable=not self.main, dynamic_ncols=True)
        window_start, window_images = time.perf_counter(), 0
        while self.iteration < cfg.max_iter:
            batch = next(batches)
            images = as_model_input(batch.images, self.device, cfg.channels_last)
            targets = batch.targets.to(self.device, non_blocking=True)
            loss_l, loss_c, finite = self.step(images, targets)
            bad["count"] += ~finite
            bad["run"] = torch.where(finite, 0, bad["run"] + 1)
            bad["longest"] = torch.maximum(bad["longest"], bad["run"])
            window_images += images.shape[0] * self.world_size
            bar.update(1)
            logging_now = self.iteration % cfg.log_every == 0 or self.iteration in (1, cfg.max_iter)
            checkpoint_now = cfg.checkpoint_every > 0 and self.iteration % cfg.checkpoint_every == 0
            eval_now = self.main and cfg.eval_every > 0 and self.iteration % cfg.eval_every == 0 \
                and self.iteration < cfg.max_iter
            if logging_now or checkpoint_now or eval_now:
                self.check_bad_steps(bad)
            if self.main and logging_now:
                elapsed = time.perf_counter() - window_start
                values = {"loss": (loss_l + loss_c).item(), "loss_l": loss_l.item(), "loss_c": loss_c.item(),
                          "lr": self.optimizer.param_groups[0]["lr"], "img_s": window_images / max(elapsed, 1e-9)}
                bar.set_postfix(loc=f"{values['loss_l']:.3f}", conf=f"{values['loss_c']:.3f}",
                                lr=f"{values['lr']:.2e}", img_s=f"{values['img_s']:.1f}")
                self.logger.log(self.iteration, values)
                window_start, window_images = time.perf_counter(), 0
            if checkpoint_now:
                self.save()
            if eval_now:
                self.validate()
        bar.close()
        return self.finish()

    def finish(self):
        if self.world_size > 1:
            sums = [torch.zeros((), dtype=torch.float64) for _ in range(self.world_size)]
            dist.all_gather_object(sums, parameters_checksum(self.model).cpu())
            in_sync = all(torch.equal(sums[0], s) for s in sums)
            if self.main:
                log.info("ranks in sync: %s", in_sync)
            if not in_sync:
                raise RuntimeError(f"replicas diverged: parameter checksums {[float(s) for s in sums]}")
        metrics = None
        if self.main:
            self.save()
            log.info("final weights: %s", self.save_weights("final.pth"))
            if self.cfg.final_eval:
                metrics = self.validate(os.path.join(self.cfg.output, "eval"))
                print(format_ap_table(metrics))
                print(f"evaluation of final.pth on {metrics['speed']['images']} test images: results, metrics.json "
                      f"and detections drawn in {os.path.join(self.cfg.output, 'eval', 'examples.jpg')}")
            self.logger.plot_losses()
            self.logger.close()
        return metrics


class Terminated(Exception):
    """SIGTERM (what cluster schedulers send before killing a job): save a checkpoint like Ctrl-C."""


def _terminate(signum, frame):
    raise Terminated()


def prepare(args, rank: int, world_size: int, device: torch.device):
    """-> (Config, checkpoint path or None, checkpoint state or None, whether this is the CPU pipeline check)."""
    flags = flags_given(args)
    resume = find_resume(args.resume, flags.get("output")) if args.resume else None
    if args.resume == "auto" and resume is None:
        log.info("--resume auto: no run to continue (%s), starting a new one",
                 flags.get("output") or f"nothing under {RUNS_ROOT}/")
    state = read_state(resume) if resume else None
    if state is not None:
        if weights_format(state) != "checkpoint":
            raise WeightsError(f"{resume}: not a train.py checkpoint (plain weights); to start a new run from "
                               f"these weights use eval.py/detect.py --weights, or --basenet for VGG16 weights")
        check_model_flags(resume, state["config"], flags)
        saved = resolve(None, state["config"])
        cfg = resolve(dict(flags, output=flags.get("output") or os.path.dirname(os.path.abspath(resume))),
                      state["config"])
        if rank == 0:
            changes = [c for c in changed_settings(saved, cfg) if not c.startswith("--output")]
            log.info("resuming %s: %s", resume, "settings changed by flags: " + "; ".join(changes) if changes
                     else "settings as stored")
        return cfg, resume, state, False
    cpu_check = device.type == "cpu" and (flags.get("dataset") or "shapes") == "shapes" and \
        not any(k in flags for k in SCHEDULE_KEYS)
    cfg = resolve(flags, default_dataset="shapes", preset=CPU_CHECK if cpu_check else None)
    if not cfg.output:
        cfg = cfg.replace(output=default_output(cfg))
    if rank == 0:
        check_fresh_folder(cfg.output)
    return cfg, None, None, cpu_check


def announce(cfg: Config, device: torch.device, world_size: int, cpu_check: bool):
    log.info("device: %s%s", describe_device(device), f" x {world_size} processes" if world_size > 1 else "")
    total = cfg.batch_size * world_size
    log.info("learning rate %.3g (--lr %.3g is for a total batch of %d; scaled to %d)", cfg.lr_for(total), cfg.lr,
             cfg.lr_reference_batch, total)
    log.info("run folder: %s", cfg.output)
    if cpu_check:
        log.warning("no GPU: running a pipeline check instead of the %d x %d-image schedule (about %.0f hours on "
                    "this CPU): %d iterations at batch %d, then evaluation on %d test images; about 5 minutes on 2 "
                    "cores. Any schedule flag (e.g. --max-iter) runs the schedule you give instead.",
                    config_for("shapes").max_iter, config_for("shapes").batch_size,
                    config_for("shapes").max_iter * config_for("shapes").batch_size / 0.65 / 3600, cfg.max_iter,
                    cfg.batch_size, cfg.eval_limit)


CPU_CHECK_DONE = """\
pipeline check done: data, augmentation, training, checkpointing, evaluation and drawing all ran on this CPU.
A CPU cannot train SSD300 into a useful detector in minutes (the mAP above is near 0, as expected); next:
  real detections on this CPU (a trained VOC model, about 0.6 s per image on 2 cores):
    bash scripts/get_weights.sh --ssd && python detect.py --weights weights/ssd300_mAP_77.43_v2.pth YOUR_PHOTO.jpg
  the full shapes run on a GPU machine: python train.py"""


def main(argv=None):
    args = parse_args(argv)
    try:
        rank, world_size, _, device = init_distributed(args.device)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S", force=True)
    try:
        cfg, resume, checkpoint, cpu_check = prepare(args, rank, world_size, device)
        if cfg.batch_size == 1 and (cfg.batch_norm or cfg.backbone != "vgg16"):
            variant = "the BatchNorm variant" if cfg.backbone == "vgg16" else f"the {cfg.backbone} backbone (BatchNorm)"
            raise ConfigError(f"--batch-size 1 with {variant}: BatchNorm needs at least 2 images per step; use "
                              f"--batch-size 2 or more" + (", or --no-batch-norm" if cfg.backbone == "vgg16" else ""))
        cores = usable_cores(int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        if cfg.workers > cores:
            log.info("--workers %d capped to %d (the CPU cores this process can use)", cfg.workers, cores)
            cfg = cfg.replace(workers=cores)
        if rank == 0:
            announce(cfg, device, world_size, cpu_check)
        trainer = Trainer(cfg, rank, world_size, device, resume, checkpoint)
        if rank == 0:
            log.info("config: %s", trainer.cfg.to_dict())
    except (DatasetError, WeightsError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        cleanup()
        return 2
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        metrics = trainer.train()
    except (KeyboardInterrupt, Terminated) as exc:
        log.warning("%s at iteration %d: saving a checkpoint (continue with --resume %s)",
                    "terminated" if isinstance(exc, Terminated) else "interrupted", trainer.iteration,
                    trainer.cfg.output)
        trainer.save()
        return 143 if isinstance(exc, Terminated) else 130
    except torch.OutOfMemoryError:
        print(f"error: out of GPU memory at batch size {cfg.batch_size}, size {cfg.size}: lower --batch-size, "
              f"use --amp bf16, or train SSD300 instead of SSD512", file=sys.stderr)
        return 3
    except FloatingPointError as exc:
        trainer.save()
        print(f"error: {exc}", file=sys.stderr)
        return 4
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
        cleanup()
    if cpu_check and rank == 0 and metrics is not None:
        print(CPU_CHECK_DONE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
