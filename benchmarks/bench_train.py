"""Training end to end, as train.py runs it: JPEG decoding and augmentation in DataLoader workers, host-to-device
copies, the network, batched matching + loss, the sync-free fused-SGD step. torchvision's ssd300_vgg16 training
step (on batches already on the device) runs in the same process for the ratio.

    python -m benchmarks.bench_train [--batch-size 32] [--amp bf16] [--channels-last] [--compile] [--workers 16]
        [--size 300] [--steps 100] [--images 2000]

Writes VOC-sized (500x375) JPEGs with VOC classes to a temporary VOC-style folder, trains SSD from scratch on it
for 2 x --steps iterations through `train.Trainer` and reports the second half (after start-up, compilation and
cuDNN autotuning) from the trainer's own img/s log. On CPU use e.g. --batch-size 2 --steps 2 --workers 1
--images 16.
"""
import os
import tempfile

import torch

from benchmarks.bench_train_step import bench_torchvision, random_targets
from benchmarks.common import device_name, step_parser, write_random_voc_folder
from config import VOC_CLASSES
from config_resolve import config_for
from engine import Trainer
from utils.distributed import resolve_device
from utils.logger import last_training_rate


def main():
    parser = step_parser(__doc__, 32)
    parser.set_defaults(steps=100)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--workers", type=int, default=min(16, os.cpu_count()))
    parser.add_argument("--size", type=int, default=300, choices=[300, 512])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-norm", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as folder:
        write_random_voc_folder(os.path.join(folder, "data"), args.images, VOC_CLASSES)
        cfg = config_for("VOC", dataset_root=os.path.join(folder, "data"), sets=["trainval"],
                         test_sets=["trainval"], basenet="none", batch_norm=args.batch_norm, size=args.size,
                         batch_size=args.batch_size, workers=args.workers, amp=args.amp,
                         channels_last=args.channels_last, compile=args.compile, max_iter=2 * args.steps,
                         log_every=args.steps, warmup_iters=0, checkpoint_every=0, eval_every=0,
                         output=os.path.join(folder, "run"), tensorboard=False, final_eval=False)
        trainer = Trainer(cfg, 0, 1, device)
        trainer.train()
        rate = last_training_rate(cfg.run.output)
    print(f"\nSSD{args.size} training end to end, batch {args.batch_size}, amp {args.amp}, channels-last "
          f"{args.channels_last}, compile {args.compile}, {args.workers} workers, {device_name(device)}")
    print("| model | img/s | ms/iteration |\n|---|---|---|")
    print(f"| ours, end to end (data loading included) | {rate:.1f} | {args.batch_size / rate * 1e3:.1f} |")
    if not args.skip_torchvision and args.size == 300:
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 255, (args.batch_size, 3, 300, 300), dtype=torch.uint8, generator=generator)
        targets = random_targets(args.batch_size, device, generator)
        seconds = bench_torchvision(args, device, images.to(device), targets)
        print(f"| torchvision ssd300_vgg16, step only | {args.batch_size / seconds:.1f} | {seconds * 1e3:.1f} |")
        print(f"\nspeed-up over torchvision: {rate * seconds / args.batch_size:.2f}x")


if __name__ == "__main__":
    main()
