"""Prior coverage and the prior fit at COCO scale: a COCO train2017-sized annotation file (bench_scale's: 118,287
images, 860,001 boxes) read through data/ as train.py reads it, then for each layout the coverage of every box and
the fit, timed; beside it the plain definition (torchvision's `box_iou` of every box against every prior) on a
sample, for the speed-up and the largest difference.

    python -m benchmarks.bench_priors [--coco-images 118287] [--coco-boxes 860001] [--json FILE]
    python -m benchmarks.bench_priors --dataset VOC --dataset-root DIR --class-names A B C --sets trainval  # your data

Prints one Markdown table (and writes it as JSON with --json).
"""
import argparse
import json
import os
import tempfile
import time

import torch
from torchvision.ops import box_iou

from benchmarks.bench_scale import write_coco
from benchmarks.common import device_name
from config import prior_table, table_layout
from config_resolve import resolve
from data import build_source, normalised_boxes
from layers import PriorBox, cxcywh_to_xyxy
from layers.prior_fit import coverage_of, fit_layout

LAYOUTS = (("vgg16", 300), ("vgg16", 512), ("mobilenet_v3", 320))
REFERENCE_BOXES = 20000


def reference_best_iou(boxes: torch.Tensor, layout: dict) -> torch.Tensor:
    priors = cxcywh_to_xyxy(PriorBox(layout).forward())
    return torch.cat([box_iou(chunk, priors).amax(1) for chunk in boxes.split(1024)])


def read_boxes(args) -> tuple:
    """-> (the config, the training boxes normalised to [0, 1], what they are, seconds to read them): the set named
    by the flags, else a synthetic COCO-format set of COCO's size."""
    with tempfile.TemporaryDirectory() as scratch:
        if args.dataset:
            flags = dict(dataset=args.dataset, dataset_root=args.dataset_root, class_names=args.class_names,
                         sets=args.sets)
            what = f"{args.dataset} {args.dataset_root} {' '.join(args.sets or [])}"
        else:
            write_coco(scratch, args.coco_images, args.coco_boxes, empty=round(args.coco_images * 1021 / 118287))
            flags = dict(dataset="COCO", dataset_root=scratch, sets=["train2017"])
            what = f"synthetic COCO-format set ({args.coco_images:,} images, {args.coco_boxes:,} boxes)"
        cfg = resolve({k: v for k, v in flags.items() if v is not None})
        start = time.perf_counter()
        boxes, _, _ = normalised_boxes(build_source(cfg, train=True), True)
        return cfg, boxes, what, time.perf_counter() - start


def layout_row(backbone: str, size: int, boxes, cfg) -> dict:
    """Coverage of one built-in layout (ours, and every prior by torchvision's box_iou on a sample) and its fit."""
    layout = table_layout(prior_table(backbone, cfg.data.dataset, size))
    threshold = cfg.solver.overlap_thresh
    start = time.perf_counter()
    coverage, best = coverage_of(boxes, layout, threshold)
    coverage_s = time.perf_counter() - start
    sample = boxes[:REFERENCE_BOXES]
    start = time.perf_counter()
    reference = reference_best_iou(sample, layout)
    reference_s = (time.perf_counter() - start) * len(boxes) / len(sample)
    fit = fit_layout(boxes, layout, threshold)
    return dict(layout=f"{backbone} {size}", boxes=len(boxes), priors=len(PriorBox(layout).forward()),
                coverage=coverage.covered, fitted=coverage_of(boxes, fit.layout, threshold)[0].covered,
                coverage_s=coverage_s, reference_s=reference_s,
                max_difference=float((best[:len(sample)] - reference).abs().max()), fit_s=fit.seconds,
                fit_kind=fit.kind)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--coco-images", type=int, default=118287)
    p.add_argument("--coco-boxes", type=int, default=860001)
    p.add_argument("--dataset", choices=["COCO", "VOC", "YOLO"], help="your own set instead of the synthetic one")
    p.add_argument("--dataset-root")
    p.add_argument("--class-names", nargs="+")
    p.add_argument("--sets", nargs="+")
    p.add_argument("--json")
    args = p.parse_args(argv)
    cfg, boxes, what, read_s = read_boxes(args)
    rows = [layout_row(backbone, size, boxes, cfg) for backbone, size in LAYOUTS]
    header = (f"{what}; read in {read_s:.1f} s; {device_name(torch.device('cpu'))}, {torch.get_num_threads()} "
              f"thread(s); torch {torch.__version__}; {time.strftime('%Y-%m-%d')}")
    lines = ["| layout | boxes | priors | coverage | fitted | coverage s | every prior (torchvision box_iou) s | "
             "speed-up | largest IoU difference | fit s |", "|" + "---|" * 10]
    for r in rows:
        lines.append(f"| {r['layout']} | {r['boxes']:,} | {r['priors']:,} | {100 * r['coverage']:.1f}% | "
                     f"{100 * r['fitted']:.1f}% | {r['coverage_s']:.2f} | {r['reference_s']:.1f} | "
                     f"{r['reference_s'] / r['coverage_s']:.0f}x | {r['max_difference']:.1e} | {r['fit_s']:.1f} |")
    print(header)
    print("\n".join(lines))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"header": header, "command": "python -m benchmarks.bench_priors", "rows": rows,
                       "table": "\n".join(lines)}, f, indent=1)
        print(f"results: {args.json}")


if __name__ == "__main__":
    main()
