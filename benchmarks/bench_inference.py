"""SSD inference end to end (uint8 batch in, detections out: network, softmax + decode + per-class NMS, unpadding)
for each fast-path mode, and torchvision's ssd300_vgg16 with its own post-processing in the same run; also
batch-1 latency and the devkit VOC scoring rate.

    python -m benchmarks.bench_inference [--batch-size 256] [--amp bf16] [--channels-last] [--size 300 512]
        [--modes eager compile graph compile+graph] [--steps 10]
    python -m benchmarks.bench_inference --runtime torch onnxruntime --device cpu --batch-size 4 [--int8]
        [--backbones vgg16 mobilenet_v3 resnet50] [--threads 2] [--weights W.pth --images DIR]

--runtime: the CPU runtimes side by side for each backbone, end to end with NMS (PyTorch eager `engine.Detector`,
torchvision's model of the same architecture, the whole-detector ONNX graph on ONNX Runtime fp32 and, with --int8,
INT8), at --batch-size and at batch 1, with --threads threads each. Without --weights the networks are untrained
(every class keeps its 400 candidates: the NMS worst case); --weights runs a trained model on --images.

Modes: eager; compile (torch.compile'd network); graph (network + post-processing replayed as one CUDA graph);
compile+graph. Default: all four on CUDA, eager on CPU (CPU: use e.g. --batch-size 4 --steps 2 --warmup 1).
Untrained weights give the worst case for NMS (every class keeps 400 candidates above the 0.01 threshold).
"""
import os
import tempfile
import time

import numpy as np
import torch
import torchvision

from benchmarks.common import device_name, seconds_per_call, step_parser
from config_resolve import config_for
from data import image_files, read_image
from engine import Detector, OnnxDetector, autocast, export_onnx, load_model, preprocess
from engine.deploy import onnxruntime_version, quantize_int8
from layers import PostProcessor
from models import VGGSSD, build_model
from utils.distributed import resolve_device, usable_cores
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


TORCHVISION_MODELS = {"vgg16": "ssd300_vgg16", "mobilenet_v3": "ssdlite320_mobilenet_v3_large"}


def benchmark_images(folder: str, count: int, size: int) -> torch.Tensor:
    """`count` uint8 [3, size, size] inputs: the first images of `folder` (repeated if fewer), else noise."""
    if not folder:
        generator = torch.Generator().manual_seed(0)
        return torch.randint(0, 255, (count, 3, size, size), dtype=torch.uint8, generator=generator)
    paths = image_files(folder)
    if not paths:
        raise SystemExit(f"error: --images {folder}: no images")
    images = [read_image(paths[i % len(paths)]) for i in range(count)]
    return preprocess(images, size)[0].contiguous()


def runtime_rows(backbone: str, args, scratch: str) -> list:
    """-> table rows (name, runtime, img/s at the batch size, img/s at batch 1) for one backbone."""
    if args.weights:
        model, cfg = load_model(args.weights, "cpu")
        if cfg.model.backbone != backbone:
            return []
    else:
        cfg = config_for("VOC", backbone=backbone, basenet="none")
        torch.manual_seed(0)
        model = build_model(cfg).eval()
    images = benchmark_images(args.images, args.batch_size, cfg.model.size)
    name = {"vgg16": f"VGG16 SSD{cfg.model.size}", "resnet50": "ResNet-50 SSD300", "mobilenet_v3": "SSDLite320",
            "efficientnet_lite0": "EfficientNet-Lite0 SSDLite320"}[backbone]

    def rates(run):
        batch = seconds_per_call(lambda: run(images), args.steps, args.warmup, images.device)
        single = seconds_per_call(lambda: run(images[:1]), args.steps, args.warmup, images.device)
        return images.shape[0] / batch, 1 / single

    rows = []
    if "torch" in args.runtime:
        rows.append((f"{name} (ours)", "PyTorch eager", *rates(Detector.from_config(model, cfg))))
        if backbone in TORCHVISION_MODELS and not args.skip_torchvision:
            theirs = getattr(torchvision.models.detection, TORCHVISION_MODELS[backbone])(
                weights=None, weights_backbone=None, num_classes=cfg.model.num_classes).eval()

            @torch.no_grad()
            def run_torchvision(batch):
                return theirs([image.float() / 255 for image in batch])
            rows.append((f"torchvision {TORCHVISION_MODELS[backbone]}", "PyTorch eager", *rates(run_torchvision)))
    if "onnxruntime" in args.runtime:
        fp32 = os.path.join(scratch, f"{backbone}.onnx")
        export_onnx(model, cfg, fp32)
        rows.append((f"{name} (ours)", "onnxruntime fp32", *rates(OnnxDetector(fp32, args.threads))))
        if args.int8:
            int8 = os.path.join(scratch, f"{backbone}.int8.onnx")
            calibration = [image.permute(1, 2, 0).numpy()
                           for image in benchmark_images(args.images, 16, cfg.model.size)]
            quantize_int8(fp32, int8, calibration, cfg.model.size)
            rows.append((f"{name} (ours)", "onnxruntime INT8", *rates(OnnxDetector(int8, args.threads))))
    return rows


def runtime_table(args):
    threads = args.threads or usable_cores()
    torch.set_num_threads(threads)
    args.threads = threads
    lines = [f"\nCPU runtimes end to end with NMS, batch {args.batch_size} and 1, {threads} thread(s), "
             f"{device_name(torch.device('cpu'))}, torch {torch.__version__}, onnxruntime {onnxruntime_version()}"
             + (f", {args.weights} on {args.images}" if args.weights else ", untrained networks (NMS worst case)"),
             f"| model | runtime | img/s batch {args.batch_size} | img/s batch 1 | vs ours PyTorch (batch "
             f"{args.batch_size} / 1) |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as scratch:
        for backbone in args.backbones:
            rows = runtime_rows(backbone, args, scratch)
            base = next((r for r in rows if r[1] == "PyTorch eager" and r[0].endswith("(ours)")), None)
            for model, runtime, batch, single in rows:
                ratio = f"{batch / base[2]:.2f}x / {single / base[3]:.2f}x" if base else "-"
                lines.append(f"| {model} | {runtime} | {batch:.1f} | {single:.1f} | {ratio} |")
    print("\n".join(lines))  # at the end, in one piece: INT8 calibration prints its progress meanwhile


def main():
    parser = step_parser(__doc__, 256)
    parser.add_argument("--size", type=int, nargs="+", default=[300], choices=[300, 512])
    parser.add_argument("--modes", nargs="+", choices=["eager", "compile", "graph", "compile+graph"])
    parser.add_argument("--runtime", nargs="+", choices=["torch", "onnxruntime"],
                        help="compare the CPU runtimes instead (see above)")
    parser.add_argument("--backbones", nargs="+", choices=["vgg16", "mobilenet_v3", "resnet50", "efficientnet_lite0"],
                        default=["vgg16", "mobilenet_v3"])
    parser.add_argument("--int8", action="store_true", help="--runtime: also the INT8 graph")
    parser.add_argument("--threads", type=int, default=0, help="--runtime: threads of each runtime (0: all cores)")
    parser.add_argument("--weights", help="--runtime: a trained checkpoint instead of untrained networks")
    parser.add_argument("--images", help="--runtime: a folder of images to run on (and calibrate INT8 on)")
    args = parser.parse_args()
    if args.runtime:
        runtime_table(args)
        return
    device = resolve_device(args.device)
    modes = args.modes or (["eager", "compile", "graph", "compile+graph"] if device.type == "cuda" else ["eager"])
    print(f"\nSSD inference end to end, batch {args.batch_size}, amp {args.amp}, channels-last {args.channels_last}, "
          f"{device_name(device)}")
    print("| model | mode | img/s | batch-1 latency ms | network ms/batch | post-processing ms/batch | "
          "NMS fallbacks |\n|---|---|---|---|---|---|---|")
    eager_300 = None
    for size in args.size:
        torch.manual_seed(0)
        model = VGGSSD(size, 21).to(device).eval()
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
