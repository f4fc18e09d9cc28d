"""The training loop beside inference: `Trainer` builds the model, optimizer, schedule, loss and loader from one
Config, trains with exact resume, validates, and writes checkpoints and metrics into the run folder.

    from config_resolve import resolve
    from engine import Trainer
    cfg = resolve({"dataset": "VOC", "dataset_root": "~/data/bccd", "class_names": ["RBC", "WBC", "Platelets"],
                   "backbone": "mobilenet_v3", "basenet": "none", "max_iter": 1000})
    metrics = Trainer(cfg).train()   # -> the final evaluation's metrics (metrics["mAP"])

train.py is the command line around it (flags, --resume, signals, exit codes).
"""
import logging
import math
import os
import time
import warnings

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from config import FILE_CLASSES, Config, SolverConfig
from data import DatasetError, as_model_input, build_dataset, build_source, objects_for_training, train_loader
from layers import MultiBoxLoss
from models import build_model, load_backbone
from utils.checkpoint import (
    atomic_save,
    is_full_checkpoint,
    remove_dead_temp_files,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from utils.errors import ConfigError
from utils.interrupts import INTERRUPTS
from utils.logger import MetricsLogger

from .detector import AMP_DTYPES, choose_precision
from .evaluate import evaluate, format_ap_table, not_written_line
from .priors import choose_priors
from .runs import default_output, final_eval_missing

log = logging.getLogger("ssd")
# A skipped (non-finite) step still advances the LR schedule on purpose, so the schedule stays a function of the
# iteration; torch warns when that happens before the first optimizer step.
warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before `optimizer.step\(\)`")

PROBLEMS_FILE = "dataset_problems.txt"  # every per-file problem of a run's data
PRECISION_NAMES = {"off": "float32", "bf16": "bfloat16 autocast, weights in float32",
                   "fp16": "float16 autocast with a dynamic loss scale, weights in float32"}


def lr_factor(cfg: Config, iteration: int) -> float:
    warmup = min(1.0, (iteration + 1) / cfg.solver.warmup_iters) if cfg.solver.warmup_iters > 0 else 1.0
    return warmup * cfg.solver.gamma ** sum(iteration >= step for step in cfg.solver.lr_steps)


def parameters_checksum(model) -> torch.Tensor:
    return torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()


def initial_model(cfg: Config, checkpoint: dict = None):
    """-> (model, cfg with the pixel format of the weights used). From a checkpoint: its weights (and format);
    else the backbone weights of cfg.solver.basenet, or from scratch with standardised input (what the initialisation
    assumes) instead of caffe's unscaled 0..255."""
    torch.manual_seed(cfg.run.seed)
    model = build_model(cfg)
    if cfg.solver.freeze_bn:
        model.freeze_backbone_bn()
    if checkpoint is None:
        basenet = cfg.solver.basenet
        pixel_format = "torchvision" if basenet.lower() == "none" else load_backbone(model, basenet)
        cfg = cfg.replace(pixel_format=pixel_format)
        model.set_pixel_format(pixel_format)
        log.info("network: %s SSD%d; backbone weights: %s (%s input format)", cfg.model.backbone, cfg.model.size,
                 basenet, cfg.model.pixel_format)
        return model, cfg
    model.load_state_dict(checkpoint["model"])
    return model, cfg


def build_optimizer(model, solver: SolverConfig, total_batch: int):
    """SGD (`solver.optimizer` sgd) or AdamW at the learning rate scaled to `total_batch`; with `caffe_biases`, biases
    at 2x and without decay. Fused, so that GradScaler can skip a non-finite step on the device (`guarded_step`)."""
    lr = solver.lr_for(total_batch)
    backbone = {id(p) for module in model.backbone_modules() for p in module.parameters()}
    groups = {}
    for name, p in model.named_parameters():
        bias = solver.caffe_biases and name.endswith(".bias")
        factor = (solver.backbone_lr if id(p) in backbone else 1.0) * (2.0 if bias else 1.0)
        group = groups.setdefault((factor, bias), dict(params=[], lr=lr * factor))
        if bias:
            group["weight_decay"] = 0.0
        group["params"].append(p)
    groups = list(groups.values())
    if solver.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=solver.weight_decay, fused=True)
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=solver.momentum, weight_decay=solver.weight_decay, fused=True)
    # With momentum buffers still unset, a skipped first step would leave them uninitialised (torch allocates
    # them before it reads `found_inf`); zeros make the first real step the same as with unset buffers.
    for p in model.parameters() if solver.momentum else ():
        optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return optimizer


def build_scaler(amp: str, device: torch.device) -> torch.amp.GradScaler:
    """fp16: the usual dynamic loss scale. Otherwise a scaler held at 1 (`guarded_step`), kept for what it does on
    every step: it finds non-finite gradients and has the fused optimizer skip its step on the device."""
    return torch.amp.GradScaler(device.type, init_scale=2.0 ** 16 if amp == "fp16" else 1.0)


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
    class without any object (a typo in one of several --class-names) is one warning."""
    names = ", ".join(f"{name} ({count})" for name, count in source.names_found.most_common()) or "no objects at all"
    if objects_for_training(source, cfg.data.train_difficult) == 0:
        raise DatasetError(f"{source.name}: the training set holds no object of --class-names "
                           f"{' '.join(cfg.model.class_names)}"
                           + ("" if cfg.data.train_difficult else " (difficult ones excluded)")
                           + f"; its annotations name: {names}")
    table = source.table  # None for the generated shapes set, which always has every class
    if table is not None:
        counts = np.bincount(table.labels, minlength=len(cfg.model.class_names))
        empty = [name for name, count in zip(cfg.model.class_names, counts) if count == 0]
        if empty:
            log.warning("%s: no training object of class(es) %s; the annotations name: %s", source.name, empty, names)


def finish_config(cfg: Config, train_source, checkpoint: dict = None) -> Config:
    """The config completed from the training data, before anything is built: its run folder, the classes of a
    format that names them in its files (COCO, YOLO), and the priors of a new run (a resumed one decodes with the
    priors its checkpoint carries). The pixel format follows from the weights `initial_model` loads."""
    if not cfg.run.output:
        cfg = cfg.replace(output=default_output(cfg))
    if cfg.data.dataset in FILE_CLASSES:  # the classes are the annotation files' (COCO, COCO-format, YOLO)
        cfg = cfg.replace(class_names=tuple(train_source.class_names))
    elif train_source.class_names != list(cfg.model.class_names):
        raise DatasetError(f"dataset classes {train_source.class_names} differ from --class-names "
                           f"{cfg.model.class_names}")
    check_training_objects(cfg, train_source)
    return choose_priors(cfg, train_source) if checkpoint is None else cfg


class Trainer:
    """One training run of `cfg` into the folder cfg.run.output (default: a new runs/<dataset>-<size>-<date-time>).
    `train()` -> the final evaluation's metrics (None without cfg.run.final_eval)."""

    def __init__(self, cfg: Config, rank: int = 0, world_size: int = 1, device: torch.device = None,
                 resume: str = None, checkpoint: dict = None):
        """`device`: default cuda when available, else the CPU. `checkpoint`: the state read from `resume` (a path)
        to continue from, or None. A checkpoint with weights only (final.pth, best.pth) continues from its weights
        with a fresh optimizer and schedule. In order: the config finished from the data, the parts built from
        it, a resume restored into them, the data and the run folder."""
        self.rank, self.world_size, self.main = rank, world_size, rank == 0
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.train_source = build_source(cfg, train=True)
        self.model, self.cfg = initial_model(finish_config(cfg, self.train_source, checkpoint), checkpoint)
        self.build_parts()
        self.iteration, self.best_map = 0, -1.0
        if checkpoint is not None:
            self.restore(checkpoint, resume)
        self.net = self.wrap_model()
        problems_path = os.path.join(self.cfg.run.output, PROBLEMS_FILE) if self.main else None
        self.dataset = build_dataset(self.cfg, train=True, source=self.train_source, problems_path=problems_path)
        wanted = self.main and (self.cfg.run.eval_every > 0 or self.cfg.run.final_eval)
        self.test_source = build_source(self.cfg, train=False) if wanted else None
        self.logger = None
        if self.main:
            run = self.cfg.run
            self.logger = MetricsLogger(run.output, run.tensorboard, run.visdom, self.iteration)
            self.tidy_run_folder()

    def build_parts(self):
        """The model on its device, the optimizer, schedule, precision, loss scaler and loss of self.cfg."""
        cfg, device = self.cfg, self.device
        self.model.to(device)
        if cfg.run.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if self.world_size > 1 and cfg.model.batch_norm and device.type == "cuda":  # SyncBatchNorm runs on GPUs only
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.optimizer = build_optimizer(self.model, cfg.solver, cfg.solver.batch_size * self.world_size)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda it: lr_factor(cfg, it))
        # cfg keeps what was asked (auto)
        self.amp, why = choose_precision(cfg.run.amp, device, training=True, backbone=cfg.model.backbone)
        if self.main:
            log.info("precision: %s (%s)%s", PRECISION_NAMES[self.amp], why,
                     "; --amp off for float32" if cfg.run.amp == "auto" and self.amp != "off" else "")
        self.scaler = build_scaler(self.amp, device)
        self.criterion = MultiBoxLoss.from_config(cfg, self.model.box_coder)

    def restore(self, checkpoint: dict, resume: str):
        """A run's checkpoint into the built parts: exactly (optimizer, schedule, scaler, RNG), or from a
        weights-only file with a fresh optimizer at its iteration."""
        cfg = self.cfg
        if not is_full_checkpoint(checkpoint):
            self.iteration = checkpoint.get("iteration", 0)
            if self.iteration >= cfg.solver.max_iter:
                raise ConfigError(f"--resume {resume}: its weights are at iteration {self.iteration}, the end of "
                                  f"the schedule (--max-iter {cfg.solver.max_iter}); pass a larger --max-iter")
            self.scheduler.last_epoch = self.iteration
            log.warning("%s holds weights only: continuing from its weights at iteration %d with a fresh optimizer "
                        "(momentum) and RNG state; an exact resume needs a ckpt_*.pth of the run", resume,
                        self.iteration)
            return
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.iteration, self.best_map = checkpoint["iteration"], checkpoint["best_map"]
        if self.iteration >= cfg.solver.max_iter and not final_eval_missing(cfg):
            raise ConfigError(f"--resume {resume}: the run already reached iteration {self.iteration} of "
                              f"--max-iter {cfg.solver.max_iter}; pass a larger --max-iter to train further")
        if self.iteration >= cfg.solver.max_iter:
            log.info("the run reached iteration %d of %d but its final evaluation did not complete: running it",
                     self.iteration, cfg.solver.max_iter)
        set_rng_state(checkpoint["rng"])
        log.info("resumed from %s at iteration %d", resume, self.iteration)

    def wrap_model(self):
        """The model as the training step calls it: under DistributedDataParallel and torch.compile when asked."""
        net = self.model
        if self.world_size > 1:
            net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return torch.compile(net) if self.cfg.run.compile else net

    def tidy_run_folder(self):
        removed = remove_dead_temp_files(self.cfg.run.output)
        if removed:
            log.info("removed %d temporary file(s) of a run killed while writing: %s", len(removed),
                     " ".join(os.path.basename(p) for p in removed))
        self.write_problems()

    def write_problems(self):
        """Every per-file dataset problem, in the run folder (the log has one line per kind)."""
        path = os.path.join(self.cfg.run.output, PROBLEMS_FILE)
        sources = [("training set", self.train_source), ("test set", self.test_source)]
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
            path = save_checkpoint(self.cfg.run.output, self.state(), self.cfg.run.keep_checkpoints)
            log.info("checkpoint: %s", path)

    def save_weights(self, name: str) -> str:
        """Weights + config only (what eval.py, detect.py and the notebook need), in the checkpoint format."""
        path = os.path.join(self.cfg.run.output, name)
        atomic_save({"config": self.cfg.to_dict(), "model": self.model.state_dict(), "iteration": self.iteration,
                     "best_map": self.best_map}, path)
        return path

    def evaluate_test_set(self, output: str = None):
        """Score the model on the test set (cfg.data.test_sets, cfg.test.eval_limit images), log it as validation, keep
        best.pth; the final evaluation of the run too (`output`: its eval/ folder)."""
        bar = lambda batches: tqdm(batches, desc=f"evaluating (iteration {self.iteration})", leave=False,
                                   dynamic_ncols=True)
        metrics = evaluate(self.model, self.cfg.replace(workers=min(self.cfg.data.workers, 4)), self.test_source,
                           self.device, output, progress=bar)
        self.logger.log(self.iteration, {"mAP": metrics["mAP"]}, kind="eval")
        log.info("iteration %d: validation %s mAP %.4f", self.iteration, metrics["metric"], metrics["mAP"])
        if not math.isnan(metrics["mAP"]) and metrics["mAP"] > self.best_map:
            self.best_map = metrics["mAP"]
            self.save_weights("best.pth")
        return metrics

    def step(self, images: torch.Tensor, targets: torch.Tensor):
        """One SGD step on a batch already on the device; no host synchronisation. A non-finite loss (on any
        rank) skips the update on the device. -> (the loss terms by name, finite) as device tensors."""
        with torch.autocast(self.device.type, dtype=AMP_DTYPES.get(self.amp), enabled=self.amp != "off"):
            loc, conf = self.net(images)
        terms = self.criterion((loc, conf), targets)
        loss = sum(terms.values())
        finite = torch.isfinite(loss.detach())
        if self.world_size > 1:  # every rank counts the step as skipped (the NaN gradients reach all of them)
            finite = finite.float()
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
            finite = finite.bool()
        self.optimizer.zero_grad(set_to_none=True)
        guarded_step(loss, finite, self.optimizer, self.scaler, dynamic_scale=self.amp == "fp16")
        self.scheduler.step()
        self.iteration += 1
        return {name: term.detach() for name, term in terms.items()}, finite

    def check_bad_steps(self, bad: dict):
        """Log the skipped steps counted on the device since the last check; stop after a run of
        `max_bad_steps` in a row. `bad`: {"count", "run", "longest"} device tensors, reset here."""
        count, longest = int(bad["count"]), int(bad["longest"])
        if count:
            log.warning("iterations up to %d: %d non-finite losses, steps skipped", self.iteration, count)
        if longest >= self.cfg.run.max_bad_steps:
            raise FloatingPointError(
                f"{longest} non-finite losses in a row before iteration {self.iteration}: lower --lr "
                f"(now {self.cfg.solver.lr:g}), use more --warmup-iters (now {self.cfg.solver.warmup_iters}), try "
                f"--amp off or bf16, and check the data with `python -m scripts.check_data`")
        bad["count"].zero_()
        bad["longest"].copy_(bad["run"])

    def evaluation_interrupted(self) -> bool:
        """A run resumed at a validation point whose validation never logged (a signal stopped it)."""
        cfg = self.cfg
        every = cfg.run.eval_every
        return 0 < self.iteration < cfg.solver.max_iter and every > 0 and self.iteration % every == 0 \
            and not self.logger.logged(self.iteration, "eval")

    def train(self, on_step=None):
        """Train to cfg.solver.max_iter, then save and evaluate (`finish`). `on_step(trainer, batch)`, when given, is
        called after every step with the batch just trained on (the benchmarks train a second model on it)."""
        cfg = self.cfg
        loader = train_loader(self.dataset, cfg.solver.batch_size, cfg.data.workers, cfg.run.seed, self.rank,
                              self.world_size, self.iteration, pin_memory=self.device.type == "cuda")
        batches = iter(loader)
        # skipped-step bookkeeping stays on the device and is read at log, checkpoint and eval points only
        bad = {k: torch.zeros((), dtype=torch.long, device=self.device) for k in ("count", "run", "longest")}
        if self.main and self.evaluation_interrupted():
            log.info("iteration %d: its validation was interrupted before the run stopped: running it first",
                     self.iteration)
            self.evaluate_test_set()
        self.net.train()
        with tqdm(total=cfg.solver.max_iter, initial=self.iteration, disable=not self.main, dynamic_ncols=True) as bar:
            window = {"start": time.perf_counter(), "images": 0}  # the training rate since the last log line
            while self.iteration < cfg.solver.max_iter:
                # a signal in here is raised when the step and its log line are done (utils/interrupts.py)
                with INTERRUPTS.step():
                    batch = next(batches)
                    images = as_model_input(batch.images, self.device, cfg.run.channels_last)
                    terms, finite = self.step(images, batch.targets.to(self.device, non_blocking=True))
                    bad["count"] += ~finite
                    bad["run"] = torch.where(finite, 0, bad["run"] + 1)
                    bad["longest"] = torch.maximum(bad["longest"], bad["run"])
                    window["images"] += images.shape[0] * self.world_size
                    bar.update(1)
                    if on_step is not None:
                        on_step(self, batch)
                    logging_now = self.iteration % cfg.run.log_every == 0 or self.iteration in (1, cfg.solver.max_iter)
                    checkpoint_now = cfg.run.checkpoint_every > 0 and self.iteration % cfg.run.checkpoint_every == 0
                    eval_now = self.main and cfg.run.eval_every > 0 and self.iteration % cfg.run.eval_every == 0 \
                        and self.iteration < cfg.solver.max_iter
                    if logging_now or checkpoint_now or eval_now:
                        self.check_bad_steps(bad)
                    if self.main and logging_now:
                        self.log_progress(bar, terms, window)
                if checkpoint_now:
                    self.save()
                if eval_now:
                    self.evaluate_test_set()
        return self.finish()

    def log_progress(self, bar, terms: dict, window: dict):
        """The losses, learning rate and training rate since the last line: on the progress bar and in the log."""
        elapsed = time.perf_counter() - window["start"]
        losses = {name: term.item() for name, term in terms.items()}
        values = {"loss": sum(losses.values()), **losses, "lr": self.optimizer.param_groups[0]["lr"],
                  "img_s": window["images"] / max(elapsed, 1e-9)}
        bar.set_postfix(**{name: f"{v:.3f}" for name, v in losses.items()}, lr=f"{values['lr']:.2e}",
                        img_s=f"{values['img_s']:.1f}")
        self.logger.log(self.iteration, values)
        window.update(start=time.perf_counter(), images=0)

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
            stale = os.path.join(self.cfg.run.output, "eval", "metrics.json")
            if not self.cfg.run.final_eval and os.path.isfile(stale):  # it scored earlier weights of the run
                os.remove(stale)
                log.info("removed %s: it scored the run's weights of an earlier iteration, not this final.pth "
                         "(--no-final-eval)", stale)
            if self.cfg.run.final_eval:
                metrics = self.evaluate_test_set(os.path.join(self.cfg.run.output, "eval"))
                print(format_ap_table(metrics))
                unwritten = not_written_line(metrics, os.path.join(self.cfg.run.output, "eval"))
                if unwritten:
                    log.error("%s", unwritten)
                print(f"evaluation of final.pth on {metrics['speed']['images']} test images: results, metrics.json "
                      f"and detections drawn in {os.path.join(self.cfg.run.output, 'eval', 'examples.jpg')}")
            self.logger.plot_losses()
            self.logger.close()
        return metrics
