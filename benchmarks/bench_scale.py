"""Datasets at full scale: construction time and memory for COCO train2017- and VOC07+12-sized annotation files,
and the private memory each DataLoader worker gains over an epoch with a forced garbage collection in every
worker (the "memory grows in the workers" problem: a collection touches every object inherited from the parent,
and the touched pages get copied).

    python -m benchmarks.bench_scale [--coco-images 118287] [--voc-images 16551] [--workers 2 4]

Writes synthetic annotation files of the real sizes (COCO: 118,287 images, 860,001 boxes, 80 categories, 1%
crowd, 1,021 images without annotations) to a temporary folder, with every listed image a hard link to one of a
few small real JPEGs. Prints a table and two headline lines: `worker growth: N MiB per worker` (the worst worker)
and `full COCO construction: N s`. About 6 minutes on 2 cores with the defaults.
"""
import argparse
import gc
import json
import os
import resource
import tempfile
import time

import cv2
import numpy as np
import torch

from config import COCO_CLASSES, VOC_CLASSES
from data import COCOSource, SSDDataset, VOCSource
from data.loader import collate, freeze_before_fork
from data.transforms import ResizeTransform


def rss_mib() -> float:
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024


def private_mib(pid: int) -> tuple:
    """(USS, PSS) of a process in MiB, from /proc/PID/smaps_rollup."""
    fields = {}
    for line in open(f"/proc/{pid}/smaps_rollup"):
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            fields[parts[0].rstrip(":")] = int(parts[1])
    return (fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)) / 1024, fields.get("Pss", 0) / 1024


def write_images(folder: str, names, count: int = 4):
    """Every name a hard link to one of `count` small real JPEGs."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    sources = []
    for k in range(count):
        path = os.path.join(folder, f"_source{k}.jpg")
        cv2.imwrite(path, cv2.GaussianBlur(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8), (0, 0), 2))
        sources.append(path)
    for i, name in enumerate(names):
        os.link(sources[i % count], os.path.join(folder, name))


def write_coco(root: str, images: int, boxes: int, empty: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = np.arange(1, images + 1)
    with_objects = ids[empty:]
    owner = np.concatenate([with_objects, rng.choice(with_objects, boxes - len(with_objects))])
    xy = (rng.uniform(0, 1, (boxes, 2)) * [500, 340]).round(2)
    wh = rng.uniform(4, 140, (boxes, 2)).round(2)
    categories = [{"id": i + 1 + (i >= 11) + (i >= 25), "name": n, "supercategory": "x"}
                  for i, n in enumerate(COCO_CLASSES)]
    cat_ids = np.array([c["id"] for c in categories])[rng.integers(0, 80, boxes)]
    crowd = rng.random(boxes) < 0.01
    doc = {"images": [{"id": int(i), "file_name": f"{i:012d}.jpg", "width": 640, "height": 480} for i in ids],
           "categories": categories,
           "annotations": [{"id": k + 1, "image_id": int(o), "category_id": int(c), "bbox": [*p, *s],
                            "area": float(s[0] * s[1]), "iscrowd": int(z)}
                           for k, (o, c, p, s, z) in enumerate(zip(owner.tolist(), cat_ids.tolist(), xy.tolist(),
                                                                   wh.tolist(), crowd.tolist()))]}
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    with open(os.path.join(root, "annotations", "instances_train2017.json"), "w") as f:
        json.dump(doc, f)
    write_images(os.path.join(root, "train2017"), [im["file_name"] for im in doc["images"]])


def write_voc(root: str, images: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "VOC2007")
    for sub in ("Annotations", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    ids = [f"{i:06d}" for i in range(images)]
    for image_id in ids:
        objects = "".join(f"<object><name>{VOC_CLASSES[rng.integers(20)]}</name><difficult>0</difficult><bndbox>"
                          f"<xmin>{x}</xmin><ymin>{y}</ymin><xmax>{x + 50}</xmax><ymax>{y + 40}</ymax></bndbox>"
                          f"</object>" for x, y in rng.integers(1, 320, (int(rng.integers(1, 5)), 2)).tolist())
        with open(os.path.join(folder, "Annotations", f"{image_id}.xml"), "w") as f:
            f.write(f"<annotation><filename>{image_id}.jpg</filename><size><width>500</width><height>375</height>"
                    f"</size>{objects}</annotation>")
    with open(os.path.join(folder, "ImageSets", "Main", "trainval.txt"), "w") as f:
        f.write("\n".join(ids) + "\n")
    write_images(os.path.join(folder, "JPEGImages"), [f"{i}.jpg" for i in ids])


class CollectingDataset(torch.utils.data.Dataset):
    """The evaluation dataset of a source, with a full garbage collection every `every` items in each worker."""

    def __init__(self, source, every: int):
        self.inner, self.every = SSDDataset(source, ResizeTransform(32), substitute=False), every

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, index):
        if index % self.every == 0:
            gc.collect()
        return self.inner[index]


def worker_growth(source, workers: int, batch_size: int = 256) -> list:
    """-> per worker (USS growth, PSS at the end) in MiB over one epoch."""
    freeze_before_fork(workers)
    loader = torch.utils.data.DataLoader(CollectingDataset(source, every=max(1, len(source) // (workers * 8))),
                                         batch_size=batch_size, num_workers=workers, collate_fn=collate)
    batches = iter(loader)
    next(batches)
    pids = [w.pid for w in batches._workers]
    start = [private_mib(pid)[0] for pid in pids]
    remaining = len(loader) - 1
    for _ in range(remaining - 1):
        next(batches)
    end = [private_mib(pid) for pid in pids]  # before the last batch: the workers are still alive
    for _ in batches:
        pass
    return [(uss - first, pss) for first, (uss, pss) in zip(start, end)]


def epoch_rows(coco, voc, workers_tried: list, rows: list) -> float:
    """One epoch of each set through the loader's workers, their memory growth as rows -> the worst growth."""
    worst = 0.0
    for workers in workers_tried:
        start = time.perf_counter()
        growth = worker_growth(coco, workers)
        worst = max(worst, max(g for g, _ in growth))
        rows.append((f"COCO epoch, {workers} workers, forced gc.collect() in each",
                     f"{time.perf_counter() - start:.0f} s",
                     "USS growth " + ", ".join(f"{g:.1f}" for g, _ in growth) + " MiB; PSS at the end "
                     + ", ".join(f"{p:.0f}" for _, p in growth) + " MiB"))
    growth = worker_growth(voc, workers_tried[0])
    rows.append((f"VOC epoch, {workers_tried[0]} workers, forced gc.collect()", "-",
                 "USS growth " + ", ".join(f"{g:.1f}" for g, _ in growth) + " MiB"))
    return max(worst, max(g for g, _ in growth))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coco-images", type=int, default=118287)
    parser.add_argument("--coco-boxes", type=int, help="default: 7.27 per image, as train2017")
    parser.add_argument("--voc-images", type=int, default=16551)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    args = parser.parse_args()
    boxes = args.coco_boxes or round(args.coco_images * 860001 / 118287)
    empty = round(args.coco_images * 1021 / 118287)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        write_coco(os.path.join(folder, "coco"), args.coco_images, boxes, empty)
        write_voc(os.path.join(folder, "voc"), args.voc_images)
        print(f"wrote the synthetic sets in {time.perf_counter() - started:.0f} s")
        rows = []
        before = rss_mib()
        start = time.perf_counter()
        coco = COCOSource(os.path.join(folder, "coco"), ["train2017"])
        coco_s, coco_mib = time.perf_counter() - start, rss_mib() - before
        rows.append((f"COCO construction, {args.coco_images} images, {boxes} boxes", f"{coco_s:.2f} s",
                     f"+{coco_mib:.0f} MiB resident"))
        before = rss_mib()
        start = time.perf_counter()
        voc = VOCSource(os.path.join(folder, "voc"), ["2007:trainval"], VOC_CLASSES)
        rows.append((f"VOC construction, {args.voc_images} XML files", f"{time.perf_counter() - start:.2f} s",
                     f"+{rss_mib() - before:.0f} MiB resident"))
        worst = epoch_rows(coco, voc, args.workers, rows)
    print(f"\nDatasets at scale; {os.cpu_count()} CPU cores, peak resident "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print("| what | time | memory |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nworker growth: {worst:.1f} MiB per worker")
    print(f"full COCO construction: {coco_s:.2f} s" if args.coco_images >= 118287 else
          f"full COCO construction: {coco_s * 118287 / args.coco_images:.2f} s (scaled from {args.coco_images} images)")


if __name__ == "__main__":
    main()
