"""Evaluate SSD weights: VOC mAP exactly as the official devkit, or COCO AP through pycocotools.

    python eval.py --weights runs/shapes-300-20261124-101500/final.pth   # settings come from the checkpoint
    python eval.py --weights weights/ssd300_mAP_77.43_v2.pth --dataset VOC --dataset-root ~/data/VOCdevkit
    python eval.py --dataset VOC --dataset-root R --test-sets test --class-names A B --from-results DIR  # score files
    python eval.py --weights runs/RUN/ssd300.detector.int8.onnx      # an exported detector (fp32 or INT8)

On a CPU the detector runs on ONNX Runtime (--runtime auto; exported beside the weights on first use), on a GPU in
PyTorch; the first line says which and why.

Outputs (results files, metrics.json, pr_curves.png, ap_table.png, examples.jpg) go to an `eval` folder beside
the weights file unless --output says otherwise.
"""
from utils.interrupts import quiet_while_starting, started  # noqa: I001 (first: Ctrl-C while torch loads)

quiet_while_starting("eval.py")
import logging
import os
import sys

import numpy as np
from tqdm import tqdm

from config import FILE_CLASSES
from config_flags import add_flags, chosen_dataset, flags_given
from config_resolve import config_for, resolve
from data import DatasetError, build_source
from engine import evaluate, format_ap_table, load_detector, not_written_line, write_evaluation
from utils.cli import Parser, add_device_flag, entry_point
from utils.distributed import cap_workers, resolve_device
from utils.errors import ConfigError
from utils.output import check_output_folder
from utils.voc_eval import evaluate_detections, read_results, to_devkit

log = logging.getLogger("ssd")
EVAL_KEYS = ("dataset", "dataset_root", "test_sets", "class_names", "size", "batch_norm", "metric", "eval_limit",
             "score_thresh", "nms_thresh", "top_k", "pre_nms_top_k", "nms", "soft_nms_method", "soft_nms_sigma",
             "unreadable", "batch_size", "workers", "runtime", "threads", "amp", "channels_last", "compile",
             "cuda_graph", "graph_nms_rounds", "output")


def parse_args(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    p = Parser(__doc__, aliases={"--sets": "--test-sets", "--limit": "--eval-limit"})
    p.add_argument("--weights", help="a train.py checkpoint (final.pth, best.pth, ckpt_*.pth: carries its settings), "
                                     "plain SSD weights such as ssd.pytorch's, or a whole-detector .onnx file "
                                     "(scripts/export_onnx.py --nms, fp32 or INT8)")
    add_flags(p, EVAL_KEYS, config_for(chosen_dataset(argv, "VOC")),
              shown={"dataset": "the checkpoint's, else VOC", "output": "an eval folder beside --weights",
                     "size": "the checkpoint's, else 300", "batch_norm": "the checkpoint's, else off",
                     "class_names": "the checkpoint's, else the dataset's"})
    p.add_argument("--from-results", metavar="DIR",
                   help="score saved comp4_det_test_<class>.txt files from this folder, no network")
    add_device_flag(p)
    return p.parse_args(argv)


def report(metrics: dict, output: str = None):
    """Print the AP table and speed, then which of the evaluation's files could not be written (a full disk)."""
    print(format_ap_table(metrics))
    speed = metrics.get("speed")
    if speed:
        parts = "".join(f"; {key[:-6]} {value:.1f} img/s" for key, value in speed.items()
                        if key.endswith("_img_s") and key != "end_to_end_img_s")
        scored = speed["images"] if speed.get("images_in_set", speed["images"]) == speed["images"] else \
            f"{speed['images']} of the {speed['images_in_set']}"
        print(f"{scored} images scored in {speed['total_s']:.1f} s: end to end {speed['end_to_end_img_s']:.1f} "
              f"img/s{parts}")
    unwritten = not_written_line(metrics, output)
    if unwritten:
        print(f"error: {unwritten}", file=sys.stderr)
    elif output:
        print(f"results and metrics.json in {output}")


def score_saved_results(cfg, folder: str, output: str) -> dict:
    """Score the comp4 files in `folder` against the test set. Detections of images outside the set are counted
    and left out; none inside it is an error naming the set and some of the ids found."""
    source = build_source(cfg, train=False)
    ground_truth = {}
    for i in range(len(source)):
        boxes, labels, difficult = source.annotation(i)
        ground_truth[source.image_id(i)] = (to_devkit(boxes), labels, difficult)
    if not any(len(labels) for _, labels, _ in ground_truth.values()):
        raise DatasetError(f"{source.name}: no ground-truth object of {list(source.class_names)}; nothing to score")
    detections = read_results(folder, source.class_names)
    known = np.array(sorted(ground_truth), dtype=str)
    found = np.concatenate([np.zeros(0, str)] + [ids for ids, _, _ in detections.values()])
    inside = np.isin(found, known)
    if len(found) and not inside.any():
        sample = ", ".join(sorted(set(found.tolist()))[:5])
        raise DatasetError(f"{folder}: none of its {len(found)} detections is on an image of {source.name} "
                           f"(--test-sets {' '.join(cfg.data.test_sets)}); image ids found: {sample}")
    if not inside.all():
        outside = found[~inside]
        log.warning("%s: %d detection(s) on %d image(s) not in %s left out, first: %s", folder, len(outside),
                    len(set(outside.tolist())), source.name, outside[0])
    detections = {c: tuple(column[np.isin(ids, known)] for column in (ids, scores, boxes))
                  for c, (ids, scores, boxes) in detections.items()}
    metrics = evaluate_detections(detections, ground_truth, source.class_names, cfg.test.metric)
    metrics["detections_outside_set"] = int((~inside).sum())
    write_evaluation(metrics, output)
    return metrics


@entry_point
def main(argv=None):
    started()
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S",
                        force=True)
    flags = flags_given(args)
    try:
        if args.from_results:
            cfg = resolve(flags)
            output = check_output_folder(cfg.run.output or args.from_results)
            metrics = score_saved_results(cfg, args.from_results, output)
            report(metrics, output)
            return 1 if metrics["not_written"] else 0
        if not args.weights:
            raise ConfigError("give --weights (or --from-results DIR to score saved files)")
        device = resolve_device(args.device)
        loaded = load_detector(args.weights, device, flags, timing=True, say=print)
        print(loaded.description)
        cfg = loaded.cfg
        if "eval_limit" not in flags:  # a training run's validation subset is not a standalone evaluation's
            cfg = cfg.replace(eval_limit=0)
        cfg = cfg.replace(workers=cap_workers(cfg.data.workers))
        output = cfg.run.output if "output" in flags else os.path.join(os.path.dirname(os.path.abspath(args.weights)),
                                                                   "eval")
        check_output_folder(output)
        source = build_source(cfg, train=False)
        if cfg.data.dataset not in FILE_CLASSES and source.class_names != list(cfg.model.class_names):
            raise DatasetError(f"dataset classes {source.class_names} differ from the model's "
                               f"{list(cfg.model.class_names)}")
        metrics = evaluate(loaded.model, cfg, source, loaded.detector.device, output, loaded.detector,
                           progress=lambda batches: tqdm(batches, desc="evaluating", dynamic_ncols=True))
    except KeyboardInterrupt:
        print("interrupted: evaluation stopped, nothing scored or written", file=sys.stderr)
        return 130
    report(metrics, output)
    return 1 if metrics.get("not_written") else 0


if __name__ == "__main__":
    sys.exit(main())
