"""VOC2007-test-sized evaluation end to end, as eval.py runs it: reading the annotations, JPEG decoding and
resizing in DataLoader workers, the network, post-processing, copying detections back, devkit scoring.

    python -m benchmarks.bench_eval [--images 4952] [--batch-size 64] [--workers 16] [--amp bf16]
        [--channels-last] [--compile] [--cuda-graph] [--weights W]

Writes --images VOC-sized (500x375) JPEGs with VOC classes to a temporary folder. Without --weights the model is
untrained: the worst case for NMS and scoring (200 detections per image reach the devkit). On CPU use e.g.
--images 16 --batch-size 8 --workers 1.
"""
import argparse
import os
import tempfile
import time

import torch

from benchmarks.common import device_name, write_random_voc_folder
from config import VOC_CLASSES, config_for
from data import build_source
from engine import evaluate, load_model
from models import SSD
from utils.distributed import resolve_device


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4952)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=min(16, os.cpu_count()))
    parser.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--cuda-graph", action="store_true")
    parser.add_argument("--weights", help="trained weights (default: an untrained SSD300)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as folder:
        write_random_voc_folder(folder, args.images, VOC_CLASSES, set_name="test")
        settings = dict(dataset_root=folder, test_sets=["test"], channels_last=args.channels_last,
                        compile=args.compile, cuda_graph=args.cuda_graph, batch_size=args.batch_size,
                        workers=args.workers, amp=args.amp)
        if args.weights:
            model, cfg = load_model(args.weights, device, dict(dataset="VOC", **settings))
        else:
            cfg = config_for("VOC", **settings)
            model = SSD.from_config(cfg).to(device).eval()
        start = time.perf_counter()
        source = build_source(cfg, train=False)
        parsed = time.perf_counter()
        metrics = evaluate(model, cfg, source, device)
        total = time.perf_counter() - start
    speed = metrics["speed"]
    print(f"\nVOC07-test-sized evaluation: {args.images} images 500x375, batch {args.batch_size}, amp {args.amp}, "
          f"channels-last {args.channels_last}, compile {args.compile}, CUDA graph {args.cuda_graph}, "
          f"{args.workers} workers, {device_name(device)}")
    print("| stage | s |\n|---|---|")
    print(f"| annotations read | {parsed - start:.2f} |")
    print(f"| detection (decode, network, post-processing, copy back) | {speed['total_s']:.2f} |")
    print(f"| devkit scoring | {total - (parsed - start) - speed['total_s']:.2f} |")
    print(f"| total | {total:.2f} |")
    print(f"\nend to end {args.images / total:.1f} img/s; mAP {metrics['mAP']:.4f} (meaningless without weights)")


if __name__ == "__main__":
    main()
