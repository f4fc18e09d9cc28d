"""One SSD300 training step (forward, matching + loss, backward, SGD) and torchvision's ssd300_vgg16 in the
same run, as the reference ratio.

    python -m benchmarks.bench_train_step [--batch-size 32] [--steps 10] [--amp bf16] [--channels-last]

Prints images/s for the full step and the time split into network (forward + backward) and matching + loss.
On CPU use a small batch (e.g. --batch-size 4 --steps 3).
"""
import statistics
import time

import torch
import torchvision

from benchmarks.common import device_name, step_parser, sync
from layers import MultiBoxLoss
from models import SSD
from utils.distributed import resolve_device


def random_targets(batch, device, generator):
    targets = []
    for _ in range(batch):
        n = int(torch.randint(1, 8, (1,), generator=generator))
        xy = torch.rand(n, 2, generator=generator) * 0.7
        wh = torch.rand(n, 2, generator=generator) * 0.3 + 0.02
        labels = torch.randint(0, 20, (n, 1), generator=generator).float()
        targets.append(torch.cat([xy, xy + wh, labels], 1).to(device))
    return targets


def ours_step(args, device, images, targets):
    """-> a function running one training step of ours and returning (network s, matching + loss s)."""
    model = SSD(300, 21).to(device).train()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = MultiBoxLoss(21, model.box_coder)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    amp = dict(device_type=device.type, dtype=torch.bfloat16 if args.amp == "bf16" else torch.float16,
               enabled=args.amp != "off")

    def step():
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(**amp):
            loc, conf = model(images)
        sync(device)
        t1 = time.perf_counter()
        terms = criterion((loc, conf), targets)
        sync(device)
        t2 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        optimizer.step()
        sync(device)
        return (t1 - t0) + (time.perf_counter() - t2), t2 - t1
    return step


def torchvision_step(args, device, images, targets):
    """-> a function running one training step of torchvision's ssd300_vgg16 (its transform, loss and all) and
    returning its seconds."""
    model = torchvision.models.detection.ssd300_vgg16(weights=None, weights_backbone=None, num_classes=21)
    model = model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    tv_images = [img.float() / 255 for img in images]
    tv_targets = [dict(boxes=t[:, :4] * 300, labels=t[:, 4].long() + 1) for t in targets]
    amp = dict(device_type=device.type, dtype=torch.bfloat16 if args.amp == "bf16" else torch.float16,
               enabled=args.amp != "off")

    def step():
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(**amp):
            losses = model(tv_images, tv_targets)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()
        sync(device)
        return time.perf_counter() - t0
    return step


def bench_torchvision(args, device, images, targets) -> float:
    """Median seconds of torchvision's training step."""
    step = torchvision_step(args, device, images, targets)
    times = [step() for _ in range(args.warmup + args.steps)][args.warmup:]
    return statistics.median(times)


def main():
    args = step_parser(__doc__, 32).parse_args()
    device = resolve_device(args.device)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (args.batch_size, 3, 300, 300), dtype=torch.uint8, generator=generator)
    images = images.to(device)
    targets = random_targets(args.batch_size, device, generator)
    ours = ours_step(args, device, images, targets)
    theirs = None if args.skip_torchvision else torchvision_step(args, device, images, targets)
    # alternate the two, step by step, so that a machine's drift (clock, other load) hits both alike; medians
    ours_times, their_times = [], []
    for index in range(args.warmup + args.steps):
        measured = ours()
        other = theirs() if theirs else None
        if index >= args.warmup:
            ours_times.append(measured)
            their_times.append(other)
    net = statistics.median(t[0] for t in ours_times)
    loss = statistics.median(t[1] for t in ours_times)
    print(f"\nSSD300 training step, batch {args.batch_size}, amp {args.amp}, "
          f"channels-last {args.channels_last}, {device_name(device)}; medians of {args.steps} alternating steps")
    print("| model | step ms | img/s | network ms | matching+loss ms |\n|---|---|---|---|---|")
    step = net + loss
    print(f"| ours | {step * 1e3:.1f} | {args.batch_size / step:.1f} | {net * 1e3:.1f} | {loss * 1e3:.1f} |")
    if theirs:
        tv = statistics.median(their_times)
        print(f"| torchvision ssd300_vgg16 | {tv * 1e3:.1f} | {args.batch_size / tv:.1f} | - | - |")
        print(f"\nspeed-up over torchvision: {tv / step:.2f}x")


if __name__ == "__main__":
    main()
