"""Train SSD300/SSD512 on VOC, COCO, your own VOC-style or COCO-format data, or the built-in `shapes` set.

    python train.py                                          # shapes; on a CPU: a pipeline check of minutes
    python train.py --dataset VOC --dataset-root ~/data/VOCdevkit --channels-last
    torchrun --nproc_per_node=4 train.py --dataset VOC ...  # multi-GPU (DistributedDataParallel)
    python train.py --resume auto                            # continue the newest run under runs/

Every run writes into its own folder (default runs/<dataset>-<size>-<date-time>). Every default lives in
config.py; flags override it. See README.md for the full manual.
"""
from utils.interrupts import quiet_while_starting  # noqa: I001 (first: Ctrl-C while torch loads is one line)

quiet_while_starting("train.py")
import logging
import os
import sys
import time

import torch

from config import CPU_CHECK, CPU_DEMO, NO_FLAG, SCHEDULE_KEYS, Config
from config_checks import check_model_flags
from config_flags import add_flags, chosen_dataset, flags_given, settings
from config_resolve import changed_settings, config_for, resolve
from engine import (
    RUNS_ROOT,
    Trainer,
    check_fresh_folder,
    default_output,
    find_resume,
    read_resume,
    run_checkpoint,
    run_finished,
)
from engine.trainer import PRECISION_NAMES
from models.weights import weights_format
from utils.checkpoint import WeightsError
from utils.cli import Parser, add_device_flag, entry_point
from utils.distributed import cap_workers, cleanup, describe_device, init_distributed
from utils.errors import ConfigError
from utils.interrupts import INTERRUPTS, StepAbandoned, Terminated, started
from utils.logger import last_training_rate
from utils.output import OutputError, check_output_folder

log = logging.getLogger("ssd")
# Every setting of a training run: the network, the data, the solver and the run, and how much to evaluate; not
# the post-processing (a run evaluates with the defaults; eval.py takes them) nor the settings no flag sets.
TRAIN_KEYS = tuple(k for k in settings("model", "data", "solver", "run") if k not in NO_FLAG and k != "unreadable") \
    + ("eval_limit",)


def parse_args(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    dataset = chosen_dataset(argv, "shapes")
    p = Parser(__doc__)
    add_flags(p, TRAIN_KEYS, config_for(dataset), shown={"output": f"{RUNS_ROOT}/<dataset>-<size>-<date-time>",
                                                        "matching": "bipartite for vgg16, else best-prior",
                                                        "min_sizes": "the layout's, e.g. SSDLite320: 64 112 160 208 "
                                                                     "256 304"})
    p.add_argument("--resume", metavar="auto|FOLDER|FILE",
                   help="continue a run: 'auto' = the newest run (in --output when given), a run folder (its newest "
                        "checkpoint), or a checkpoint file; its settings come back, flags given again win")
    add_device_flag(p)
    return p.parse_args(argv)


def prepare(args, rank: int, world_size: int, device: torch.device):
    """-> (Config, checkpoint path or None, checkpoint state or None, whether this is the CPU pipeline check)."""
    flags = flags_given(args)
    resume = find_resume(args.resume, flags.get("output")) if args.resume else None
    if args.resume == "auto" and resume is None:
        log.info("--resume auto: no run to continue (%s), starting a new one",
                 flags.get("output") or f"nothing under {RUNS_ROOT}/")
    state = read_resume(resume) if resume else None
    if args.resume == "auto" and state is not None and rank == 0:
        folder = os.path.dirname(os.path.abspath(resume))
        log.info("--resume auto: continuing %s at iteration %s (%s)", folder, state.get("iteration", "?"),
                 "finished: every run is; a larger --max-iter trains it further" if run_finished(folder)
                 else "its newest checkpoint" if flags.get("output") else "the most recent unfinished run")
    if state is not None:
        if weights_format(state) != "checkpoint":
            raise WeightsError(f"{resume}: not a train.py checkpoint (plain weights); to start a new run from "
                               f"these weights use eval.py/detect.py --weights, or --basenet for VGG16 weights")
        check_model_flags(resume, state["config"], flags)
        saved = resolve(None, state["config"])
        cfg = resolve(dict(flags, output=flags.get("output") or os.path.dirname(os.path.abspath(resume))),
                      state["config"])
        if rank == 0:
            check_output_folder(cfg.run.output, create=False)
        if rank == 0:
            changes = [c for c in changed_settings(saved, cfg) if not c.startswith("--output")]
            log.info("resuming %s: %s", resume, "settings changed by flags: " + "; ".join(changes) if changes
                     else "settings as stored")
        return cfg, resume, state, False
    cpu_check = device.type == "cpu" and (flags.get("dataset") or "shapes") == "shapes" and \
        not any(k in flags for k in SCHEDULE_KEYS)
    preset = None
    if cpu_check:
        preset = CPU_DEMO if flags.get("backbone", CPU_DEMO["backbone"]).startswith("efficientnet") else CPU_CHECK
        preset = {k: v for k, v in preset.items() if k not in flags}
    cfg = resolve(flags, default_dataset="shapes", preset=preset)
    if not cfg.run.output:
        cfg = cfg.replace(output=default_output(cfg))
    if rank == 0:
        check_output_folder(cfg.run.output, create=False)
        check_fresh_folder(cfg.run.output)
    return cfg, None, None, cpu_check


def cpu_check_done(trainer, metrics: dict, minutes: float) -> str:
    """The closing lines of the main command on a CPU: the pretrained detector's result and what to run next, or
    the pipeline check's, with the full schedule's time at the rate the check itself trained."""
    if trainer.cfg.model.backbone.startswith("efficientnet"):
        cfg = trainer.cfg
        return CPU_DEMO_DONE.format(backbone=cfg.model.backbone, images=cfg.solver.max_iter * cfg.solver.batch_size,
                                    minutes=minutes,
                                    mAP=metrics["mAP"], output=cfg.run.output)
    full = config_for("shapes")
    img_s = last_training_rate(trainer.cfg.run.output)
    return CPU_CHECK_DONE.format(img_s=img_s, precision=PRECISION_NAMES[trainer.amp].split(",")[0],
                                 iterations=full.solver.max_iter, batch=full.solver.batch_size,
                                 hours=full.solver.max_iter * full.solver.batch_size / img_s / 3600)


def announce(cfg: Config, device: torch.device, world_size: int, cpu_check: bool):
    log.info("device: %s%s", describe_device(device), f" x {world_size} processes" if world_size > 1 else "")
    total = cfg.solver.batch_size * world_size
    solver = cfg.solver
    log.info("learning rate %.3g (--lr %.3g is for a total batch of %d; scaled to %d)", solver.lr_for(total), solver.lr,
             solver.lr_reference_batch, total)
    log.info("run folder: %s", cfg.run.output)
    if cpu_check and cfg.model.backbone.startswith("efficientnet"):
        log.info("no GPU: fine-tuning the pretrained %s detector on %d images (a few minutes on a CPU), then "
                 "evaluation on %d test images; --backbone vgg16 runs the SSD300 pipeline check instead, and any "
                 "schedule flag (e.g. --max-iter) the schedule you give", cfg.model.backbone,
                 cfg.solver.max_iter * cfg.solver.batch_size, cfg.test.eval_limit)
    elif cpu_check:
        full = config_for("shapes")
        log.warning("no GPU: running a pipeline check instead of the %d x %d-image schedule (days on a CPU; the "
                    "check ends with this CPU's estimate): %d iterations at batch %d, then evaluation on %d test "
                    "images. Any schedule flag (e.g. --max-iter) runs the schedule you give instead.",
                    full.solver.max_iter, full.solver.batch_size, cfg.solver.max_iter, cfg.solver.batch_size,
                    cfg.test.eval_limit)


CPU_CHECK_DONE = """\
pipeline check done: data, augmentation, training, checkpointing, evaluation and drawing all ran on this CPU.
At the {img_s:.2f} img/s it trained ({precision}), the full {iterations} x {batch}-image schedule would take about
{hours:.0f} hours here: a CPU cannot train SSD300 into a useful detector in minutes (the mAP above is near 0, as
expected); next:
  real detections on this CPU (a trained VOC model; SSD300 on ONNX Runtime runs about 4 images/s on 2 cores):
    bash scripts/get_weights.sh --ssd && python detect.py --weights weights/ssd300_mAP_77.43_v2.pth YOUR_PHOTO.jpg
  the full shapes run on a GPU machine: python train.py"""

CPU_DEMO_DONE = """\
done: the {backbone} detector, started from its ImageNet weights, trained on {images} images in {minutes:.1f} minutes
on this CPU and scored mAP {mAP:.3f} on the test images above; detections drawn in {output}/eval/examples.jpg.
next:
  run it on your pictures:  python detect.py --weights {output}/final.pth YOUR_PHOTO.jpg
  train on your own data:   python train.py --dataset VOC --dataset-root DIR --class-names A B C
  the SSD300 pipeline check: python train.py --backbone vgg16"""


@entry_point
def main(argv=None):
    started()
    args = parse_args(argv)
    rank, world_size, _, device = init_distributed(args.device)
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S", force=True)
    INTERRUPTS.install()
    try:
        return run(args, rank, world_size, device)
    finally:
        INTERRUPTS.restore()
        cleanup()


def run(args, rank: int, world_size: int, device: torch.device) -> int:
    try:
        cfg, resume, checkpoint, cpu_check = prepare(args, rank, world_size, device)
        if cfg.solver.batch_size == 1 and (cfg.model.batch_norm or cfg.model.backbone != "vgg16"):
            vgg = cfg.model.backbone == "vgg16"
            variant = "the BatchNorm variant" if vgg else f"the {cfg.model.backbone} backbone (BatchNorm)"
            raise ConfigError(f"--batch-size 1 with {variant}: BatchNorm needs at least 2 images per step; use "
                              f"--batch-size 2 or more" + (", or --no-batch-norm" if vgg else ""))
        cfg = cfg.replace(workers=cap_workers(cfg.data.workers, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
        if rank == 0:
            announce(cfg, device, world_size, cpu_check)
        trainer = Trainer(cfg, rank, world_size, device, resume, checkpoint)
        if rank == 0:
            log.info("config: %s", trainer.cfg.to_dict())
    except (KeyboardInterrupt, Terminated) as exc:
        print(f"{'terminated' if isinstance(exc, Terminated) else 'interrupted'} before training started (nothing to "
              f"resume): run the command again to start", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    began = time.perf_counter()
    status, metrics = train_to_the_end(trainer)
    if status == 0 and cpu_check and rank == 0 and metrics is not None:
        print(cpu_check_done(trainer, metrics, (time.perf_counter() - began) / 60))
    return status


def train_to_the_end(trainer) -> tuple:
    """trainer.train(), with an interrupt, a full disk, running out of GPU memory or a diverged loss each ending
    in its one message (and a checkpoint where one can be written). -> (exit status, final metrics or None)."""
    cfg = trainer.cfg
    try:
        return 0, trainer.train()
    except StepAbandoned:
        newest = run_checkpoint(cfg.run.output)
        print(f"interrupted twice during iteration {trainer.iteration + 1}: stopped without saving; " +
              (f"--resume {cfg.run.output} continues from {os.path.basename(newest)}" if newest else
               "the run had no checkpoint yet, so there is nothing to resume: run the command again to start anew"),
              file=sys.stderr)
        return 130, None
    except (KeyboardInterrupt, Terminated) as exc:
        log.warning("%s at iteration %d: saving a checkpoint (continue with --resume %s)",
                    "terminated" if isinstance(exc, Terminated) else "interrupted", trainer.iteration, cfg.run.output)
        status, message = 143 if isinstance(exc, Terminated) else 130, None
    except OutputError as exc:
        return not_saved(trainer, exc), None
    except torch.OutOfMemoryError:
        print(f"error: out of GPU memory at batch size {cfg.solver.batch_size}, size {cfg.model.size}: lower "
              f"--batch-size, use --amp bf16, or train SSD300 instead of SSD512", file=sys.stderr)
        return 3, None
    except FloatingPointError as exc:
        status, message = 4, f"error: {exc}"
    try:
        trainer.save()
    except OutputError as error:
        return not_saved(trainer, error), None
    if message:
        print(message, file=sys.stderr)
    return status, None


def not_saved(trainer, exc: OutputError) -> int:
    """A checkpoint that could not be written (a full disk): one line, with what a resume would continue from."""
    newest = run_checkpoint(trainer.cfg.run.output)
    print(f"error: {exc}; " + (f"the run's newest complete checkpoint is {os.path.basename(newest)}: free some space "
                               f"and --resume {trainer.cfg.run.output} continues from it" if newest else
                               "the run has no complete checkpoint yet: free some space and start it again"),
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
