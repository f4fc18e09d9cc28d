"""Evaluate SSD weights: VOC mAP exactly as the official devkit, or COCO AP through pycocotools.

    python eval.py --weights weights/run/final.pth                  # settings come from the checkpoint
    python eval.py --dataset VOC --dataset-root ~/data/VOCdevkit --sets 2007:test \
        --weights weights/ssd300_mAP_77.43_v2.pth --size 300        # plain weights (e.g. ssd.pytorch's)
    python eval.py --dataset VOC --dataset-root R --sets test --labels A B --from-results results/  # score files
"""
import argparse
import json
import logging
import math
import os
import sys

import numpy as np
from tqdm import tqdm

from config import DATASET_DEFAULTS, Config, config_for
from data import DatasetError, build_source
from models import WeightsError
from models.weights import read_state, weights_format
from utils.checkpoint import MODEL_KEYS
from utils.distributed import resolve_device
from utils.evaluation import evaluate, format_ap_table, load_model
from utils.visualize import plot_ap_table, plot_pr_curves
from utils.voc_eval import evaluate_detections, read_results, to_devkit

log = logging.getLogger("ssd")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--weights", help="a train.py checkpoint/final.pth (carries its settings) or plain SSD weights")
    a("--dataset", choices=sorted(DATASET_DEFAULTS), help="default: the checkpoint's, else VOC")
    a("--dataset-root", help="VOCdevkit folder, a single VOC-style folder, or the COCO root")
    a("--sets", nargs="+", help="image sets to evaluate, e.g. 2007:test | test | val2017")
    a("--labels", nargs="+", help="class names (plain weights of a custom dataset)")
    a("--size", type=int, choices=[300, 512], help="input size for plain weights (default 300)")
    a("--batch-norm", action=argparse.BooleanOptionalAction, default=None, help="plain weights: BN variant")
    a("--metric", choices=["voc07", "voc12"], help="VOC07 11-point AP (default) or VOC2010+ area")
    a("--from-results", help="score saved comp4_det_test_<class>.txt files from this folder, no network")
    a("--output", help="folder for results files, metrics.json and plots (default: results/)")
    a("--limit", type=int, default=0, help="evaluate only the first N images of the set")
    a("--conf-thresh", type=float, help="per-class score threshold (default 0.01)")
    a("--nms-thresh", type=float, help="NMS IoU threshold (default 0.45)")
    a("--top-k", type=int, help="detections kept per image (default 200)")
    a("--nms", choices=["hard", "soft"], help="hard NMS (default) or Soft-NMS")
    a("--soft-nms-method", choices=["linear", "gaussian"], help="Soft-NMS rescoring (default gaussian)")
    a("--soft-nms-sigma", type=float, help="Gaussian Soft-NMS sigma (default 0.5)")
    a("--device", help="cuda, cpu (default: cuda when available)")
    a("--batch-size", type=int, default=32)
    a("--workers", type=int, default=4)
    a("--amp", choices=["off", "bf16", "fp16"], default="off")
    a("--channels-last", action="store_true", help="channels-last memory format (faster with --amp on GPUs)")
    a("--compile", action="store_true", help="torch.compile the network (pays off on long runs)")
    a("--cuda-graph", action="store_true",
      help="capture network + post-processing as a CUDA graph per batch shape and replay it (CUDA only)")
    a("--graph-nms-rounds", type=int, help="NMS rounds inside the CUDA graph before the exact fallback (default 12)")
    return p.parse_args(argv)


def build_config(args, state: dict = None) -> Config:
    """The checkpoint's config (if the weights' contents `state` carry one), then the flags given."""
    saved = dict(state["config"]) if state is not None and weights_format(state) == "checkpoint" else {}
    dataset = args.dataset or saved.get("dataset", "VOC")
    values = config_for(dataset).to_dict()
    if saved.get("dataset") == dataset:
        values.update(saved)
    else:  # evaluating on another dataset: keep only what defines the model
        values.update({k: saved[k] for k in MODEL_KEYS if k != "dataset" and k in saved})
    flags = {"dataset_root": args.dataset_root, "test_sets": args.sets, "labels": args.labels, "size": args.size,
             "batch_norm": args.batch_norm, "metric": args.metric, "conf_thresh": args.conf_thresh,
             "nms_thresh": args.nms_thresh, "top_k": args.top_k, "nms": args.nms,
             "soft_nms_method": args.soft_nms_method, "soft_nms_sigma": args.soft_nms_sigma,
             "channels_last": args.channels_last or None, "compile": args.compile or None,
             "cuda_graph": args.cuda_graph or None, "graph_nms_rounds": args.graph_nms_rounds}
    values.update({k: v for k, v in flags.items() if v is not None})
    return Config.from_dict(values)


def report(metrics: dict, output: str = None):
    """Print the AP table and speed; with VOC metrics, also write pr_curves.png and ap_table.png to `output`."""
    print(format_ap_table(metrics))
    if output and "curves" in metrics:
        plot_pr_curves(metrics, os.path.join(output, "pr_curves.png"))
        plot_ap_table(metrics, os.path.join(output, "ap_table.png"))
    speed = metrics.get("speed")
    if speed:
        parts = "".join(f"; {key[:-6]} {value:.1f} img/s" for key, value in speed.items()
                        if key.endswith("_img_s") and key != "end_to_end_img_s")
        print(f"{speed['images']} images in {speed['total_s']:.1f} s: end to end {speed['end_to_end_img_s']:.1f} "
              f"img/s{parts}")
    if output:
        print(f"results and metrics.json in {output}")


def score_saved_results(cfg: Config, folder: str, limit: int, output: str) -> dict:
    source = build_source(cfg, train=False)
    count = min(limit, len(source)) if limit > 0 else len(source)
    ground_truth = {}
    for i in range(count):
        boxes, labels, difficult = source.annotation(i)
        ground_truth[source.image_id(i)] = (to_devkit(boxes), labels, difficult)
    detections = read_results(folder, source.class_names)
    known = np.array(sorted(ground_truth), dtype=str)
    detections = {c: tuple(column[np.isin(ids, known)] for column in (ids, scores, boxes))
                  for c, (ids, scores, boxes) in detections.items()}
    metrics = evaluate_detections(detections, ground_truth, source.class_names, cfg.metric)
    if output:
        os.makedirs(output, exist_ok=True)
        with open(os.path.join(output, "metrics.json"), "w") as f:
            json.dump({"metric": metrics["metric"], "mAP": metrics["mAP"], "AP": metrics["AP"]}, f, indent=2,
                      default=lambda v: None if isinstance(v, float) and math.isnan(v) else v)
    return metrics


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        state = read_state(args.weights) if args.weights else None  # read once, used for config and weights
        cfg = build_config(args, state)
        output = args.output or "results"
        if args.from_results:
            metrics = score_saved_results(cfg, args.from_results, args.limit, output)
            report(metrics, output)
            return 0
        if not args.weights:
            print("error: give --weights (or --from-results to score saved files)", file=sys.stderr)
            return 2
        device = resolve_device(args.device)
        model, cfg = load_model(args.weights, device, cfg.to_dict(), state)
        source = build_source(cfg, train=False)
        if cfg.dataset != "COCO" and source.class_names != list(cfg.labels):
            raise DatasetError(f"dataset classes {source.class_names} differ from the model's {cfg.labels}")
        metrics = evaluate(model, cfg, source, device, args.batch_size, args.workers, args.amp, args.limit,
                           output, progress=lambda it: tqdm(it, desc="detect"))
    except (DatasetError, WeightsError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report(metrics, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
