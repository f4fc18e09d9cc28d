"""Decode + augmentation throughput (images/s) for one worker and for N DataLoader workers.

    python -m benchmarks.bench_data [--images 400] [--workers 1 2 4] [--size 300]

Writes VOC-sized (500x375) JPEGs with random boxes to a temporary VOC-style folder, then times
(a) OpenCV decode + resize alone, (b) the full training augmentation (decode + expand/crop/flip/resize warp +
photometric), (c) the evaluation transform, each in this process, and (d) the training pipeline through the
DataLoader (collate and uint8 batches included) with each worker count.
"""
import argparse
import os
import tempfile
import time

import cv2
import torch

from benchmarks.common import write_random_voc_folder
from config_resolve import config_for
from data import build_dataset, train_loader


def rate(fn, count):
    start = time.perf_counter()
    for i in range(count):
        fn(i)
    return count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        write_random_voc_folder(folder, args.images)
        cfg = config_for("VOC", dataset_root=folder, sets=["trainval"], test_sets=["trainval"], class_names=["cat"],
                         size=args.size)
        train = build_dataset(cfg, train=True)
        evaluation = build_dataset(cfg, train=False, source=train.source)
        paths = [train.source.image_path(i) for i in range(len(train.source))]
        rows = [
            ("OpenCV decode + resize", 1, rate(lambda i: cv2.resize(cv2.imread(paths[i % len(paths)]),
                                                                  (args.size, args.size)), args.images)),
            ("train augmentation (decode incl.)", 1, rate(lambda i: train[(i % len(train), (0, 0, i))], args.images)),
            ("eval transform (decode incl.)", 1, rate(lambda i: evaluation[i % len(evaluation)], args.images)),
        ]
        for workers in args.workers:
            loader = train_loader(train, args.batch_size, workers, seed=0, pin_memory=torch.cuda.is_available())
            iterator = iter(loader)
            next(iterator)  # start-up
            batches = max(2, args.images // args.batch_size)
            start = time.perf_counter()
            for _ in range(batches):
                next(iterator)
            rows.append((f"train DataLoader, batch {args.batch_size}", workers,
                         batches * args.batch_size / (time.perf_counter() - start)))
            del iterator, loader
    cpu = f"{os.cpu_count()} CPUs"
    print(f"\nData pipeline throughput, {args.size}x{args.size} output, 500x375 JPEG input ({cpu})")
    print(f"| {'pipeline':<36} | workers | images/s |\n|{'-' * 38}|---------|----------|")
    for name, workers, value in rows:
        print(f"| {name:<36} | {workers:>7} | {value:>8.0f} |")


if __name__ == "__main__":
    main()
