"""Ultralytics' YOLOv8n, the detector a user would pick instead, trained from scratch on the same split and scored with
the devkit's VOC07 rule by this repo's own scoring code: the record a "YOLO" row of the docs needs.

    python -m benchmarks.bench_yolo --dataset-root DIR --class-names RBC WBC Platelets --sets trainval \\
        --test-sets test --images 7900 --seeds 0 --out benchmarks/results/yolo-bccd-seed0.json

ultralytics is never a dependency of the repo: it is installed into a virtualenv of its own (--venv, default
~/.cache/ssd-bench-ultralytics), which sees this environment's torch, torchvision, numpy and OpenCV through a .pth
file instead of downloading them again. The training and test images are written as a YOLO-format folder (the
repo's own readers and label writer: the same boxes); YOLOv8n trains from its yaml (no weights) at --imgsz with
Ultralytics' defaults otherwise (mosaic and the rest), for the epochs that make --images training images; its
predictions on the test images (conf 0.001, as Ultralytics validates) are scored with utils.voc_eval.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import sysconfig
import tempfile
import time

import numpy as np
import torch

from benchmarks.common import device_name
from config_resolve import resolve
from data import build_source
from data.label_files import LabelWriter
from utils.voc_eval import evaluate_detections, to_devkit

TRAIN_AND_PREDICT = r"""
import json, sys, time
from ultralytics import YOLO
data, epochs, imgsz, seed, project, images, out = sys.argv[1:8]
model = YOLO("yolov8n.yaml")
start = time.perf_counter()
model.train(data=data, epochs=int(epochs), imgsz=int(imgsz), seed=int(seed), batch=16, workers=1, device="cpu",
            pretrained=False, amp=False, plots=False, val=False, project=project, name="run", exist_ok=True,
            verbose=False)
seconds = time.perf_counter() - start
found = {}
for path in open(images).read().split():
    result = model.predict(path, imgsz=int(imgsz), conf=0.001, iou=0.7, max_det=300, device="cpu", verbose=False)[0]
    found[path] = {"boxes": result.boxes.xyxy.tolist(), "scores": result.boxes.conf.tolist(),
                   "labels": result.boxes.cls.int().tolist()}
json.dump({"train_seconds": seconds, "detections": found}, open(out, "w"))
"""


def yolo_venv(folder: str, version: str) -> str:
    """A virtualenv with ultralytics that uses this environment's packages (torch...) through a .pth file."""
    python = os.path.join(folder, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", folder], check=True)
        site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        with open(os.path.join(site, "ssd-environment.pth"), "w") as f:
            f.write(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", f"ultralytics=={version}"], check=True)
    return python


def write_yolo_folder(cfg, root: str) -> tuple:
    """The training and test sets as images/<split> + labels/<split> + data.yaml -> (data.yaml, test image paths,
    the test set's ground truth by image path)."""
    truth = {}
    for split, train in (("train", True), ("test", False)):
        source = build_source(cfg, train=train)
        images = os.path.join(root, "images", split)
        os.makedirs(images, exist_ok=True)
        writer = LabelWriter("yolo", os.path.join(root, "labels", split), source.class_names)
        for i in range(len(source)):
            path = os.path.join(images, os.path.basename(source.image_path(i)))
            os.symlink(os.path.abspath(source.image_path(i)), path)
            boxes, labels, difficult = source.annotation(i)
            height, width = source.image_size(i)
            writer.add(path, (height, width), boxes, labels, np.ones(len(labels)))
            if not train:
                truth[path] = (to_devkit(boxes), labels, difficult)
        writer.close()
        if train:
            train_count = len(source)
    data_yaml = os.path.join(root, "data.yaml")
    with open(data_yaml, "w") as f:
        names = json.dumps(list(cfg.model.class_names))
        f.write(f"path: {root}\ntrain: images/train\nval: images/test\nnames: {names}\n")
    return data_yaml, truth, train_count


def score(detections: dict, truth: dict, class_names) -> dict:
    by_class = {}
    for c, name in enumerate(class_names):
        ids, scores, boxes = [], [], []
        for path, det in detections.items():
            keep = np.array(det["labels"], int) == c
            ids += [path] * int(keep.sum())
            scores += np.array(det["scores"])[keep].tolist()
            boxes += np.array(det["boxes"]).reshape(-1, 4)[keep].tolist()
        by_class[name] = (np.array(ids, dtype=str), np.array(scores), to_devkit(np.array(boxes).reshape(-1, 4)))
    return evaluate_detections(by_class, truth, list(class_names), "voc07")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset-root", required=True)
    p.add_argument("--class-names", nargs="+", required=True)
    p.add_argument("--sets", nargs="+", default=["trainval"])
    p.add_argument("--test-sets", nargs="+", default=["test"])
    p.add_argument("--images", type=int, default=7900, help="training images seen (epochs x training set)")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--ultralytics", default="8.4.190")
    p.add_argument("--venv", default=os.path.expanduser("~/.cache/ssd-bench-ultralytics"))
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    cfg = resolve({"dataset": "VOC", "dataset_root": args.dataset_root, "class_names": args.class_names,
                   "sets": args.sets, "test_sets": args.test_sets})
    python = yolo_venv(args.venv, args.ultralytics)
    record = {"header": f"{device_name()}, {torch.get_num_threads()} thread(s) per process",
              "device": device_name(), "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
              "command": "python -m benchmarks.bench_yolo " + " ".join(argv if argv is not None else sys.argv[1:]),
              "ultralytics": args.ultralytics, "rows": []}
    with tempfile.TemporaryDirectory() as root:
        data_yaml, truth, train_count = write_yolo_folder(cfg, root)
        epochs = max(1, math.ceil(args.images / train_count))
        with open(os.path.join(root, "test.txt"), "w") as f:
            f.write("\n".join(truth))
        for seed in args.seeds:
            record["rows"].append(train_and_score(python, args, cfg, root, data_yaml, truth, seed,
                                                  epochs, train_count))
            with open(args.out, "w") as f:
                json.dump(record, f, indent=1)


def train_and_score(python: str, args, cfg, root: str, data_yaml: str, truth: list, seed: int, epochs: int,
                    train_count: int) -> dict:
    """One seed of YOLOv8n in its own environment, its test detections scored by the devkit's rule -> a row."""
    out = os.path.join(root, f"found-{seed}.json")
    env = dict(os.environ, YOLO_OFFLINE="1", YOLO_VERBOSE="False")
    subprocess.run([python, "-c", TRAIN_AND_PREDICT, data_yaml, str(epochs), str(args.imgsz), str(seed),
                    os.path.join(root, "runs"), os.path.join(root, "test.txt"), out], check=True, env=env)
    found = json.load(open(out))
    metrics = score(found["detections"], truth, cfg.model.class_names)
    seen, seconds = epochs * train_count, found["train_seconds"]
    final = {"mAP": metrics["mAP"], "AP": metrics["AP"], "images_seen": seen}
    print(f"YOLOv8n seed {seed}: {epochs} epochs ({seen} images) mAP07 {metrics['mAP']:.4f} in "
          f"{seconds / 60:.1f} min", flush=True)
    return {"seed": seed, "images_seen": seen, "iterations": epochs, "batch_size": 16,
            "setup": f"yolo {args.images}", "model": "Ultralytics YOLOv8n (from scratch)",
            "recipe": f"yolo train model=yolov8n.yaml pretrained=False imgsz={args.imgsz} epochs={epochs} "
                      f"seed={seed} (Ultralytics {args.ultralytics} defaults otherwise)",
            "curve": [final], "final": final, "train_s": seconds, "train_img_s": seen / seconds}

if __name__ == "__main__":
    main()
