"""SSD inference end to end (uint8 batch in, detections out: network, softmax + decode + per-class NMS, unpadding)
for each fast-path mode, and torchvision's ssd300_vgg16 with its own post-processing in the same run; also
batch-1 latency and the devkit VOC scoring rate.

    python -m benchmarks.bench_inference [--batch-size 256] [--amp bf16] [--channels-last] [--size 300 512]
        [--modes eager compile graph compile+graph] [--steps 10]

Modes: eager; compile (torch.compile'd network); graph (network + post-processing replayed as one CUDA graph);
compile+graph. Default: all four on CUDA, eager on CPU (CPU: use e.g. --batch-size 4 --steps 2 --warmup 1).
Untrained weights give the worst case for NMS (every class keeps 400 candidates above the 0.01 threshold).
"""
import time

import numpy as np
import torch
import torchvision

from benchmarks.common import device_name, seconds_per_call, step_parser
from engine import Detector, autocast
from layers import PostProcessor
from models import SSD
from utils.distributed import resolve_device
from utils.voc_eval import evaluate_detections


def bench_mode(model, mode, images, args):
    """-> (img/s at the batch size, batch-1 latency ms, NMS fallbacks, split dict of eager ms per batch)."""
    make = lambda **kw: Detector(model, PostProcessor(model.box_coder), args.amp, args.channels_last,  # noqa: E731
                                 compile="compile" in mode, cuda_graph="graph" in mode, **kw)
    detector = make()
    batch = seconds_per_call(lambda: detector(images), args.steps, args.warmup, images.device)
    single = seconds_per_call(lambda: detector(images[:1]), args.steps, args.warmup, images.device)
    split = {}
    if mode == "eager":
        timed = make(timing=True)
        seconds_per_call(lambda: timed(images), args.steps, 0, images.device)  # accumulates timed.seconds
        split = {part: s / args.steps * 1e3 for part, s in timed.seconds.items()}
    return images.shape[0] / batch, single * 1e3, detector.fallbacks, split


@torch.no_grad()
def bench_torchvision(images, args):
    model = torchvision.models.detection.ssd300_vgg16(weights=None, weights_backbone=None, num_classes=21)
    model = model.to(images.device).eval()
    batch = [img.float() / 255 for img in images]

    def run():
        with autocast(images.device, args.amp):
            model(batch)
    return images.shape[0] / seconds_per_call(run, args.steps, args.warmup, images.device)


def scoring_rate(images=500, detections_per_image=200, classes=20):
    """Detections scored per second by the devkit evaluation (synthetic detections and ground truth)."""
    rng = np.random.default_rng(0)
    names = [f"c{i}" for i in range(classes)]
    ground_truth = {}
    for i in range(images):
        xy = rng.uniform(0, 400, (3, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(20, 100, (3, 2))], 1)
        ground_truth[str(i)] = (boxes, rng.integers(0, classes, 3), np.zeros(3, bool))
    count = images * detections_per_image
    image_ids = np.repeat(np.array(list(ground_truth), dtype=str), detections_per_image)
    xy = rng.uniform(0, 400, (count, 2))
    boxes, scores, labels = np.concatenate([xy, xy + 50], 1), rng.random(count), rng.integers(0, classes, count)
    by_class = {n: (image_ids[labels == c], scores[labels == c], boxes[labels == c]) for c, n in enumerate(names)}
    start = time.perf_counter()
    evaluate_detections(by_class, ground_truth, names)
    return count / (time.perf_counter() - start)


def main():
    parser = step_parser(__doc__, 256)
    parser.add_argument("--size", type=int, nargs="+", default=[300], choices=[300, 512])
    parser.add_argument("--modes", nargs="+", choices=["eager", "compile", "graph", "compile+graph"])
    args = parser.parse_args()
    device = resolve_device(args.device)
    modes = args.modes or (["eager", "compile", "graph", "compile+graph"] if device.type == "cuda" else ["eager"])
    print(f"\nSSD inference end to end, batch {args.batch_size}, amp {args.amp}, channels-last {args.channels_last}, "
          f"{device_name(device)}")
    print("| model | mode | img/s | batch-1 latency ms | network ms/batch | post-processing ms/batch | "
          "NMS fallbacks |\n|---|---|---|---|---|---|---|")
    eager_300 = None
    for size in args.size:
        torch.manual_seed(0)
        model = SSD(size, 21).to(device).eval()
        images = torch.randint(0, 255, (args.batch_size, 3, size, size), dtype=torch.uint8, device=device)
        for mode in modes:
            rate, latency, fallbacks, split = bench_mode(model, mode, images, args)
            parts = " | ".join(f"{split[p]:.1f}" if split else "-" for p in ("network", "postprocess"))
            print(f"| SSD{size} | {mode} | {rate:.1f} | {latency:.2f} | {parts} | {fallbacks} |")
            if size == 300 and mode == "eager":
                eager_300 = rate
        del model
    if not args.skip_torchvision:
        images = torch.randint(0, 255, (args.batch_size, 3, 300, 300), dtype=torch.uint8, device=device)
        theirs = bench_torchvision(images, args)
        print(f"| torchvision ssd300_vgg16 | eager | {theirs:.1f} | - | - | - | - |")
        if eager_300:
            print(f"\nspeed-up over torchvision (SSD300, eager): {eager_300 / theirs:.2f}x")
    print(f"\ndevkit VOC scoring: {scoring_rate():.0f} detections/s")


if __name__ == "__main__":
    main()
