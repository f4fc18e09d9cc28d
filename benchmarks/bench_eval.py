"""Evaluation end to end, as eval.py runs it, at each precision asked for: reading the annotations, JPEG decoding
and resizing in DataLoader workers, the network, post-processing, copying detections back, devkit scoring.

    python -m benchmarks.bench_eval [--images 4952] [--batch-size 64] [--workers 16] [--amp off bf16]
        [--channels-last] [--compile] [--cuda-graph] [--weights W [--dataset VOC --dataset-root R]] [--json F]

Without --dataset-root it writes --images VOC-sized (500x375) JPEGs with VOC classes to a temporary folder (a
VOC2007-test-sized set by default). Without --weights the model is untrained: the worst case for NMS and scoring
(200 detections per image reach the devkit) and a meaningless mAP. With a train.py checkpoint and its dataset
(--dataset-root, the checkpoint's test sets; or --dataset shapes) the table shows what each precision does to
the mAP. On CPU use e.g. --images 16 --batch-size 8 --workers 1.
"""
import argparse
import os
import sys
import tempfile
import time

import torch

from benchmarks.common import device_name, write_random_voc_folder
from benchmarks.record import write_record
from config import VOC_CLASSES
from config_resolve import config_for
from data import build_source
from engine import evaluate, load_model
from engine.trainer import PRECISION_NAMES
from models import VGGSSD
from utils.distributed import resolve_device


def measure(args, device, settings: dict, amp: str) -> list:
    """-> one table row: precision, annotations s, detection s, scoring s, total s, img/s, mAP."""
    settings = dict(settings, amp=amp)
    if args.weights:
        model, cfg = load_model(args.weights, device, settings)
    else:
        cfg = config_for(**settings)
        model = VGGSSD.from_config(cfg).to(device).eval()
    start = time.perf_counter()
    source = build_source(cfg, train=False)
    parsed = time.perf_counter()
    metrics = evaluate(model, cfg, source, device)
    total = time.perf_counter() - start
    detection = metrics["speed"]["total_s"]
    return [PRECISION_NAMES[amp].split(",")[0], f"{parsed - start:.2f}", f"{detection:.2f}",
            f"{total - (parsed - start) - detection:.2f}", f"{total:.2f}", f"{len(source) / total:.1f}",
            f"{metrics['mAP']:.4f}"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4952, help="random VOC-sized images (without --dataset-root)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=min(16, os.cpu_count()))
    parser.add_argument("--amp", nargs="+", choices=["off", "bf16", "fp16"], default=["off"],
                        help="the precisions to measure, one after the other (default: off, float32)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--cuda-graph", action="store_true")
    parser.add_argument("--weights", help="trained weights (default: an untrained SSD300)")
    parser.add_argument("--dataset", help="the dataset kind of --dataset-root (default: the checkpoint's, else VOC)")
    parser.add_argument("--dataset-root", help="score on this dataset's test sets instead of random images "
                        "(--dataset shapes: the built-in test split, no root)")
    parser.add_argument("--json", help="write the table as a record (benchmarks/record.py's format)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    real = bool(args.dataset_root) or args.dataset == "shapes"
    if real and not args.weights:
        parser.error("--dataset-root and --dataset shapes need --weights (an untrained model's mAP means nothing)")
    device = resolve_device(args.device)
    settings = dict(channels_last=args.channels_last, compile=args.compile, cuda_graph=args.cuda_graph,
                    batch_size=args.batch_size, workers=args.workers)
    with tempfile.TemporaryDirectory() as folder:
        if real:
            settings.update(dataset=args.dataset, dataset_root=args.dataset_root)
            what = f"{args.dataset_root or args.dataset} with {args.weights}"
        else:
            write_random_voc_folder(folder, args.images, VOC_CLASSES, set_name="test")
            settings.update(dataset="VOC", dataset_root=folder, test_sets=["test"])
            what = (f"{args.images} random images 500x375, "
                    + (f"weights {args.weights}" if args.weights else "untrained (mAP meaningless)"))
        rows = [measure(args, device, settings, amp) for amp in args.amp]
    text = "\n".join([
        "", f"Evaluation end to end: {what}; batch {args.batch_size}, channels-last {args.channels_last}, compile "
        f"{args.compile}, CUDA graph {args.cuda_graph}, {args.workers} workers, {device_name(device)}",
        "| precision | annotations s | detection s | devkit scoring s | total s | img/s | mAP |",
        "|---|---|---|---|---|---|---|", *("| " + " | ".join(row) + " |" for row in rows)])
    print(text)
    if args.json:
        write_record(args.json, text, "eval", ["python -m benchmarks.bench_eval " + " ".join(sys.argv[1:])])


if __name__ == "__main__":
    main()
