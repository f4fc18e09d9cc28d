"""Fine-tuning a pretrained detector on a set of your own: test mAP against training images seen, for recipe variants
and seeds, with the wall-clock minutes of each run (training and its final evaluation), recorded as JSON in
bench_accuracy's row format (one row per run: set-up = the variant and its budget), so that
`python -m benchmarks.bench_accuracy --combine FILES` prints their table.

    python -m benchmarks.bench_finetune --dataset-root DIR --class-names RBC WBC Platelets \\
        --budgets 1000 2000 4000 8000 --seeds 0 --out benchmarks/results/finetune-bccd-seed0.json
    python -m benchmarks.bench_finetune ... --budgets 1000 --variant lr3e-3 "--lr 0.003" --variant sgd "--optimizer sgd"

Every run is `train.py`'s own Trainer on the config train.py resolves from the same flags (the backbone's
fine-tuning recipe unless a variant's flags change it); a budget of N images sets --max-iter N / batch, with the
recipe's warm-up and its steps at the same fractions of the schedule. Two of these side by side on 2 cores: give
each OMP_NUM_THREADS=1 (the record says how many threads each used).
"""
import json
import os
import shlex
import sys
import tempfile
import time

import torch

from benchmarks.common import device_name
from config_flags import add_flags, flags_given
from config_resolve import resolve
from engine import Trainer
from utils.cli import Parser

KEYS = ("dataset", "dataset_root", "sets", "test_sets", "class_names", "backbone", "basenet", "batch_size", "amp",
        "workers")


def budget_schedule(cfg, images: int) -> dict:
    """The recipe's schedule stretched to `images` training images: steps at the same fractions of --max-iter."""
    max_iter = max(1, round(images / cfg.solver.batch_size))
    steps = tuple(max(1, round(step * max_iter / cfg.solver.max_iter)) for step in cfg.solver.lr_steps)
    return dict(max_iter=max_iter, lr_steps=steps, warmup_iters=min(cfg.solver.warmup_iters, max_iter // 4))


def run_one(flags: dict, images: int, output: str, name: str, extra: str) -> dict:
    cfg = resolve(flags)
    cfg = cfg.replace(**budget_schedule(cfg, images), output=output, checkpoint_every=0,
                      eval_every=0, tensorboard=False, log_every=50)
    start = time.perf_counter()
    metrics = Trainer(cfg).train()
    seconds = time.perf_counter() - start
    seen = cfg.solver.max_iter * cfg.solver.batch_size
    final = {"mAP": metrics["mAP"], "AP": metrics["AP"], "images_seen": seen}
    recipe = (f"python train.py --dataset VOC --dataset-root DIR --class-names {' '.join(cfg.model.class_names)} "
              f"{extra} --max-iter {cfg.solver.max_iter} --lr-steps {' '.join(map(str, cfg.solver.lr_steps))} "
              f"--warmup-iters {cfg.solver.warmup_iters}").replace("  ", " ")
    weights = "ImageNet" if cfg.solver.basenet.lower() != "none" else "from scratch"
    return {"seed": cfg.run.seed, "images_seen": seen, "iterations": cfg.solver.max_iter,
            "batch_size": cfg.solver.batch_size,
            "setup": f"{name} {images}", "model": f"ours ({cfg.model.backbone}, {weights})", "recipe": recipe,
            "curve": [final], "final": final, "train_s": seconds, "train_img_s": seen / seconds,
            "config": {k: v for k, v in cfg.to_dict().items()
                       if k in ("optimizer", "lr", "lr_reference_batch", "weight_decay", "backbone_lr", "freeze_bn",
                                "expand_max_ratio", "photometric", "basenet", "backbone", "batch_size", "amp",
                                "priors", "warmup_iters", "lr_steps", "max_iter")}}


def main(argv=None):
    p = Parser(__doc__)
    add_flags(p, KEYS, resolve({"dataset": "VOC", "class_names": ["a"]}))
    p.add_argument("--budgets", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "FLAGS"),
                   help="a recipe variant: its name and the train.py flags that make it (default: the recipe)")
    p.add_argument("--out", required=True, help="the JSON record to write (rewritten after every run)")
    args = p.parse_args(argv)
    base = {k: v for k, v in flags_given(args).items() if k in KEYS}
    base.setdefault("dataset", "VOC")
    variants = args.variant or [("recipe", "")]
    record = {"header": f"{device_name()}, {torch.get_num_threads()} thread(s) per process; torch {torch.__version__}",
              "device": device_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d"), "command": "python -m benchmarks.bench_finetune " +
              " ".join(map(shlex.quote, argv if argv is not None else sys.argv[1:])), "rows": []}
    for name, extra in variants:
        extra_flags = parse_variant(extra)
        for images in args.budgets:
            for seed in args.seeds:
                with tempfile.TemporaryDirectory() as folder:
                    row = run_one(dict(base, **extra_flags, seed=seed), images, os.path.join(folder, "run"), name,
                                  extra)
                record["rows"].append(row)
                print(f"{name} seed {seed} {images} images: mAP07 {row['final']['mAP']:.4f} in "
                      f"{row['train_s'] / 60:.1f} min", flush=True)
                with open(args.out, "w") as f:
                    json.dump(record, f, indent=1)


def parse_variant(text: str) -> dict:
    """'--lr 0.003 --freeze-bn' -> the Config keys it sets, through train.py's own flag vocabulary."""
    import train
    args = train.parse_args(["--dataset", "VOC", *shlex.split(text)])
    return {k: v for k, v in flags_given(args).items() if k != "dataset"}


if __name__ == "__main__":
    main()
