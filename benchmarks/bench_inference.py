"""SSD300 inference end to end (network, softmax + decode + per-class NMS) and torchvision's ssd300_vgg16 with
its own post-processing in the same run; also batch-1 latency and the devkit VOC scoring rate.

    python benchmarks/bench_inference.py [--batch-size 256] [--amp bf16] [--channels-last] [--steps 10]

On CPU use a small batch (e.g. --batch-size 4 --steps 2). Untrained weights give the worst case for NMS
(hundreds of candidates per class survive the 0.01 score threshold).
"""
import os
import sys
import time

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchmarks.common import device_name, setup_device, step_parser, sync  # noqa: E402
from layers import PostProcessor  # noqa: E402
from models import build_ssd  # noqa: E402
from utils.evaluation import autocast  # noqa: E402
from utils.voc_eval import evaluate_detections  # noqa: E402


@torch.no_grad()
def time_ours(model, images, post, amp, steps, warmup):
    device = images.device
    net_s = post_s = 0.0
    for step in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        with autocast(device, amp):
            loc, conf = model(images)
        sync(device)
        t1 = time.perf_counter()
        post(loc.float(), conf.float(), model.priors)
        sync(device)
        if step >= warmup:
            net_s += t1 - t0
            post_s += time.perf_counter() - t1
    return net_s / steps, post_s / steps


@torch.no_grad()
def time_torchvision(images, amp, steps, warmup):
    model = torchvision.models.detection.ssd300_vgg16(weights=None, weights_backbone=None, num_classes=21)
    model = model.to(images.device).eval()
    batch = [img.float() / 255 for img in images]
    total = 0.0
    for step in range(warmup + steps):
        sync(images.device)
        t0 = time.perf_counter()
        with autocast(images.device, amp):
            model(batch)
        sync(images.device)
        if step >= warmup:
            total += time.perf_counter() - t0
    return total / steps


def scoring_rate(images=500, detections_per_image=200, classes=20):
    """Detections scored per second by the devkit evaluation (synthetic detections and ground truth)."""
    rng = np.random.default_rng(0)
    names = [f"c{i}" for i in range(classes)]
    ground_truth, by_class = {}, {n: [] for n in names}
    for i in range(images):
        xy = rng.uniform(0, 400, (3, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(20, 100, (3, 2))], 1)
        ground_truth[str(i)] = (boxes, rng.integers(0, classes, 3), np.zeros(3, bool))
        for _ in range(detections_per_image):
            xy = rng.uniform(0, 400, 2)
            by_class[names[rng.integers(classes)]].append((str(i), rng.random(), np.r_[xy, xy + 50]))
    start = time.perf_counter()
    evaluate_detections(by_class, ground_truth, names)
    return images * detections_per_image / (time.perf_counter() - start)


def main():
    args = step_parser(__doc__, 256).parse_args()
    device = setup_device(args.device)
    torch.manual_seed(0)
    model = build_ssd(300, 21).to(device).eval()
    images = torch.randint(0, 255, (args.batch_size, 3, 300, 300), dtype=torch.uint8, device=device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    post = PostProcessor()
    net, nms = time_ours(model, images, post, args.amp, args.steps, args.warmup)
    net1, nms1 = time_ours(model, images[:1], post, args.amp, args.steps, args.warmup)
    name = device_name(device)
    print(f"\nSSD300 inference, batch {args.batch_size}, amp {args.amp}, channels-last {args.channels_last}, {name}")
    print("| model | img/s end to end | network ms/batch | post-processing ms/batch | batch-1 latency ms |")
    print("|---|---|---|---|---|")
    print(f"| ours | {args.batch_size / (net + nms):.1f} | {net * 1e3:.1f} | {nms * 1e3:.1f} | "
          f"{(net1 + nms1) * 1e3:.2f} |")
    if not args.skip_torchvision:
        tv = time_torchvision(images, args.amp, args.steps, args.warmup)
        print(f"| torchvision ssd300_vgg16 | {args.batch_size / tv:.1f} | - | - | - |")
        print(f"\nspeed-up over torchvision: {tv / (net + nms):.2f}x")
    print(f"devkit VOC scoring: {scoring_rate():.0f} detections/s")


if __name__ == "__main__":
    main()
