"""Train SSD300/SSD512 on VOC, COCO, your own VOC-style data or the built-in `shapes` set.

    python train.py --dataset shapes                        # built-in data, no download
    python train.py --dataset VOC --dataset-root ~/data/VOCdevkit --amp bf16
    torchrun --nproc_per_node=4 train.py --dataset VOC ...  # multi-GPU (DistributedDataParallel)

Every default lives in config.py; flags override it. See README.md for the full manual.
"""
import argparse
import logging
import math
import os
import sys
import time
import warnings

import torch
import torch.distributed as dist
from tqdm import tqdm

from config import DATASET_DEFAULTS, Config, config_for
from data import DatasetError, as_model_input, build_dataset, build_source, train_loader
from layers import MultiBoxLoss
from models import WeightsError, build_ssd_from_config, load_basenet
from models.ssd import InputNormalizer
from utils.checkpoint import (atomic_save, check_compatible, latest_checkpoint, load_checkpoint, rng_state,
                              save_checkpoint, set_rng_state)
from utils.distributed import cleanup, init_distributed
from utils.evaluation import AMP_DTYPES, evaluate, format_ap_table
from utils.logger import MetricsLogger

log = logging.getLogger("ssd")
# A skipped (non-finite) step still advances the LR schedule on purpose, so the schedule stays a function of the
# iteration; torch warns when that happens before the first optimizer step.
warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before `optimizer.step\(\)`")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--dataset", default="shapes", choices=sorted(DATASET_DEFAULTS), help="dataset (default: shapes)")
    a("--dataset-root", help="VOCdevkit folder, a single VOC-style folder, or the COCO root")
    a("--sets", nargs="+", help="training image sets, e.g. 2007:trainval 2012:trainval | trainval | train2017")
    a("--test-sets", nargs="+", help="evaluation image sets, e.g. 2007:test | test | val2017")
    a("--labels", nargs="+", help="class names of a custom VOC-style dataset (default: the 20 VOC classes)")
    a("--size", type=int, choices=[300, 512], help="input size: SSD300 or SSD512 (default 300)")
    a("--batch-norm", action=argparse.BooleanOptionalAction, default=None,
      help="BatchNorm variant (default: off, on for shapes); use it when training from scratch")
    a("--basenet", help="VGG16 weights: vgg16_reducedfc.pth or torchvision's vgg16 state dict; 'none' = scratch "
                        "(default weights/vgg16_reducedfc.pth)")
    a("--batch-size", type=int, help="images per step per GPU (default 32)")
    a("--lr", type=float, help="learning rate (default 1e-3; scale it with the total batch when using more GPUs)")
    a("--momentum", type=float, help="SGD momentum (default 0.9)")
    a("--weight-decay", type=float, help="weight decay (default 5e-4)")
    a("--lr-steps", type=int, nargs="+", help="iterations where the LR is multiplied by --gamma (80000 100000)")
    a("--gamma", type=float, help="LR decay factor (default 0.1)")
    a("--warmup-iters", type=int, help="linear LR warm-up iterations (default 500)")
    a("--max-iter", type=int, help="training iterations (default 120000 for VOC)")
    a("--workers", type=int, help="data loading processes per GPU (default 4)")
    a("--device", help="cuda, cuda:1, cpu (default: cuda when available)")
    a("--seed", type=int, help="seed of initialisation, sampling and augmentation (default 0)")
    a("--save-folder", help="checkpoints, logs and final weights (default weights/run)")
    a("--checkpoint-every", type=int, help="iterations between checkpoints (default 5000)")
    a("--keep-checkpoints", type=int, help="how many recent checkpoints to keep (default 3)")
    a("--eval-every", type=int, help="iterations between validation mAP runs, 0 = never (default 10000)")
    a("--eval-limit", type=int, help="evaluate on the first N validation images only (default: all)")
    a("--no-final-eval", action="store_true", help="skip the evaluation after the last iteration")
    a("--resume", help="checkpoint to continue from, or 'auto' for the newest in --save-folder")
    a("--amp", choices=["off", "bf16", "fp16"], help="mixed precision (default off)")
    a("--channels-last", action=argparse.BooleanOptionalAction, default=None, help="NHWC memory format")
    a("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile the model")
    a("--augment", action=argparse.BooleanOptionalAction, default=None, help="SSD data augmentation (default on)")
    a("--train-difficult", action=argparse.BooleanOptionalAction, default=None,
      help="train on objects marked difficult (default on, as the original Caffe SSD)")
    a("--visdom", action=argparse.BooleanOptionalAction, default=None, help="live plots on a visdom server")
    a("--tensorboard", action=argparse.BooleanOptionalAction, default=None, help="tensorboard scalars (default on)")
    a("--log-every", type=int, help="iterations between log lines (default 10)")
    a("--max-bad-steps", type=int,
      help="stop after this many non-finite losses in a row, checked at each log line (default 5)")
    a("--shapes-train-images", type=int, help="size of the shapes training split (default 20000)")
    a("--shapes-test-images", type=int, help="size of the shapes test split (default 500)")
    return p.parse_args(argv)


def resolve_config(args, checkpoint_config=None) -> Config:
    overrides = {k: v for k, v in vars(args).items()
                 if k in Config.__dataclass_fields__ and k != "dataset" and v is not None}
    if checkpoint_config is not None:
        # a resumed run keeps its saved settings; flags given now override the non-model ones
        merged = dict(checkpoint_config)
        merged.update(overrides, dataset=args.dataset)
        return Config.from_dict(merged)
    return config_for(args.dataset, **overrides)


def lr_factor(cfg: Config, iteration: int) -> float:
    warmup = min(1.0, (iteration + 1) / cfg.warmup_iters) if cfg.warmup_iters > 0 else 1.0
    return warmup * cfg.gamma ** sum(iteration >= step for step in cfg.lr_steps)


def parameters_checksum(model) -> torch.Tensor:
    return torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()


class Trainer:
    def __init__(self, cfg: Config, rank: int, world_size: int, device: torch.device, resume: str = None,
                 checkpoint: dict = None, final_eval: bool = True):
        """`checkpoint`: the state read from `resume` (a path) to continue from, or None."""
        self.cfg, self.rank, self.world_size, self.device = cfg, rank, world_size, device
        self.main = rank == 0
        self.final_eval = final_eval
        self.train_source = build_source(cfg, train=True)
        if cfg.dataset == "COCO":  # the classes are the annotation file's (COCO itself or a COCO-format set)
            cfg.labels = list(self.train_source.class_names)
        elif self.train_source.class_names != list(cfg.labels):
            raise DatasetError(f"dataset classes {self.train_source.class_names} differ from --labels {cfg.labels}")
        if checkpoint is not None:
            check_compatible(resume, checkpoint["config"], cfg)
        torch.manual_seed(cfg.seed)
        self.model = build_ssd_from_config(cfg)
        if checkpoint is None:
            # The input format follows the backbone weights; from scratch, standardised input (unit variance,
            # what the initialisation assumes) instead of caffe's unscaled 0..255.
            if cfg.basenet.lower() == "none":
                cfg.pixel_format = "torchvision"
            else:
                cfg.pixel_format = load_basenet(self.model, cfg.basenet)
            self.model.normalize = InputNormalizer(cfg.pixel_format)
            log.info("base network: %s (%s input format)", cfg.basenet, cfg.pixel_format)
        self.model.to(device)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if world_size > 1 and cfg.batch_norm and device.type == "cuda":  # SyncBatchNorm runs on GPUs only
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        # fused SGD takes a device-side `found_inf` flag, so a non-finite step is skipped without a host sync
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                         weight_decay=cfg.weight_decay, fused=True)
        # With momentum buffers still unset, a skipped first step would leave them uninitialised (torch allocates
        # them before it reads `found_inf`); zeros make the first real step the same as with unset buffers.
        for p in self.model.parameters() if cfg.momentum else ():
            self.optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda it: lr_factor(cfg, it))
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
        self.criterion = MultiBoxLoss(cfg.num_classes, cfg.overlap_thresh, cfg.neg_pos, cfg.priors()["variance"])
        self.iteration, self.best_map = 0, -1.0
        if checkpoint is not None:
            self.model.load_state_dict(checkpoint["model"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.scheduler.load_state_dict(checkpoint["scheduler"])
            self.scaler.load_state_dict(checkpoint["scaler"])
            self.iteration, self.best_map = checkpoint["iteration"], checkpoint["best_map"]
            set_rng_state(checkpoint["rng"])
            log.info("resumed from %s at iteration %d", resume, self.iteration)
        self.net = self.model
        if world_size > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
        if cfg.compile:
            self.net = torch.compile(self.net)
        self.dataset = build_dataset(cfg, train=True, source=self.train_source)
        self.val_source = None
        if self.main and (cfg.eval_every > 0 or final_eval):
            self.val_source = build_source(cfg, train=False)
        self.logger = MetricsLogger(cfg.save_folder, cfg.tensorboard, cfg.visdom) if self.main else None

    def state(self) -> dict:
        return {"config": self.cfg.to_dict(), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "iteration": self.iteration, "rng": rng_state(),
                "best_map": self.best_map}

    def save(self):
        if self.main:
            path = save_checkpoint(self.cfg.save_folder, self.state(), self.cfg.keep_checkpoints)
            log.info("checkpoint: %s", path)

    def save_weights(self, name: str) -> str:
        """Weights + config only (what eval.py, detect.py and the notebook need), in the checkpoint format."""
        path = os.path.join(self.cfg.save_folder, name)
        atomic_save({"config": self.cfg.to_dict(), "model": self.model.state_dict(), "iteration": self.iteration,
                     "best_map": self.best_map}, path)
        return path

    def validate(self):
        metrics = evaluate(self.model, self.cfg, self.val_source, self.device, self.cfg.batch_size,
                           min(self.cfg.workers, 4), self.cfg.amp, self.cfg.eval_limit)
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
        loss_l, loss_c = self.criterion((loc, conf, self.model.priors), targets)
        loss = loss_l + loss_c
        finite = torch.isfinite(loss.detach())
        if self.world_size > 1:  # every rank must agree to skip
            finite = finite.float()
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
            finite = finite.bool()
        self.optimizer.zero_grad(set_to_none=True)
        # NaN gradients when skipping, so that fp16's GradScaler skips (and backs off) as well
        guard = torch.where(finite, 1.0, float("nan"))
        self.scaler.scale(loss * guard).backward()
        if self.scaler.is_enabled():
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.found_inf = (~finite).float()
            self.optimizer.step()
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
            images, targets, _, _ = next(batches)
            images = as_model_input(images, self.device, cfg.channels_last)
            targets = targets.to(self.device, non_blocking=True)
            loss_l, loss_c, finite = self.step(images, targets)
            bad["count"] += ~finite
            bad["run"] = torch.where(finite, 0, bad["run"] + 1)
            bad["longest"] = torch.maximum(bad["longest"], bad["run"])
            window_images += images.shape[0] * self.world_size
            bar.update(1)
            logging_now = self.iteration % cfg.log_every == 0 or self.iteration == cfg.max_iter
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
            if self.final_eval:
                metrics = self.validate()
                print(format_ap_table(metrics))
            self.logger.plot_losses()
            self.logger.close()
        return metrics


def main(argv=None):
    args = parse_args(argv)
    rank, world_size, _, device = init_distributed(args.device)
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    resume = args.resume
    try:
        if resume == "auto":
            folder = args.save_folder or config_for(args.dataset).save_folder
            resume = latest_checkpoint(folder)
            if resume is None:
                log.info("--resume auto: no checkpoint in %s, starting fresh", folder)
        checkpoint = load_checkpoint(resume) if resume else None
        cfg = resolve_config(args, checkpoint["config"] if checkpoint else None)
        if rank == 0:
            log.info("config: %s", cfg.to_dict())
        trainer = Trainer(cfg, rank, world_size, device, resume, checkpoint, final_eval=not args.no_final_eval)
    except (DatasetError, WeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        trainer.train()
    except KeyboardInterrupt:
        log.warning("interrupted at iteration %d: saving a checkpoint (continue with --resume auto)",
                    trainer.iteration)
        trainer.save()
        return 130
    except torch.OutOfMemoryError:
        print(f"error: out of GPU memory at batch size {cfg.batch_size}, size {cfg.size}: lower --batch-size, "
              f"use --amp bf16, or train SSD300 instead of SSD512", file=sys.stderr)
        return 3
    except FloatingPointError as exc:
        trainer.save()
        print(f"error: {exc}", file=sys.stderr)
        return 4
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
