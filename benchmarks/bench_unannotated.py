"""Objects a dataset leaves without a box, and what they cost a class's AP. For each class: the images of the
training and test sets that hold no box of it; for each trained run's saved detections (eval.py's comp4 files),
the class's AP on every test image and on the test images that hold at least one box of it, and how many
confident detections (score >= --score) match no box, on all test images and on those without a box of the class.
A detector that finds objects the annotators skipped is charged with false positives for them; this measures it.

    python -m benchmarks.bench_unannotated --dataset-root DIR --class-names RBC WBC Platelets --sets trainval \\
        --test-sets test --results RUN_A/eval RUN_B/eval --out label-gaps.json
"""
import json
import shlex
import sys
import time

import numpy as np

from config_flags import add_flags, flags_given
from config_resolve import resolve
from data import build_source
from utils.cli import Parser
from utils.voc_eval import evaluate_class, ground_truth_by_class, read_results, to_devkit

KEYS = ("dataset", "dataset_root", "sets", "test_sets", "class_names")


def boxes_by_class(source) -> list:
    """-> per class, {image_id: (devkit boxes [n, 4], difficult [n])} of the images holding that class."""
    by_image = {}
    for index in range(len(source)):
        boxes, labels, difficult = source.annotation(index)
        by_image[source.image_id(index)] = (to_devkit(boxes), labels, difficult)
    return ground_truth_by_class(by_image, len(source.class_names))


def class_row(name: str, columns: tuple, ground_truth: dict, test_ids: list, score: float) -> dict:
    """One class of one run: its AP on all test images and on those with a box of it, and its confident
    detections that the devkit's rule counts as false positives (precision x count of the first `confident`
    detections by score are hits)."""
    annotated = sorted(ground_truth)
    without = sorted(set(test_ids) - set(annotated))
    inside = np.isin(columns[0], annotated)
    ap, _, precision = evaluate_class(columns, ground_truth)
    confident = int((columns[1] >= score).sum())
    unmatched = confident - round(precision[confident - 1] * confident) if confident else 0
    on_without = int(((columns[1] >= score) & ~inside).sum())
    return {"class": name, "test_images_without_a_box": len(without), "first_without": without[:5],
            "ap_all_test_images": ap,
            "ap_test_images_with_a_box": evaluate_class(tuple(c[inside] for c in columns), ground_truth)[0],
            "confident": confident, "confident_matching_no_box": int(unmatched),
            "confident_on_images_without_a_box": on_without}


def main(argv=None):
    p = Parser(__doc__)
    add_flags(p, KEYS, resolve({"dataset": "VOC", "class_names": ["a"]}))
    p.add_argument("--results", nargs="+", required=True, help="eval.py output folders (comp4_det_test_*.txt)")
    p.add_argument("--score", type=float, default=0.5, help="a confident detection's lowest score")
    p.add_argument("--out", required=True, help="the JSON record to write")
    args = p.parse_args(argv)
    cfg = resolve({"dataset": "VOC", **{k: v for k, v in flags_given(args).items() if k in KEYS}})
    train, test = build_source(cfg, train=True), build_source(cfg, train=False)
    train_gt, test_gt = boxes_by_class(train), boxes_by_class(test)
    test_ids = [test.image_id(i) for i in range(len(test))]
    record = {"command": "python -m benchmarks.bench_unannotated " +
              " ".join(map(shlex.quote, argv if argv is not None else sys.argv[1:])),
              "date": time.strftime("%Y-%m-%d"), "score": args.score,
              "training_images": len(train), "test_images": len(test),
              "training_images_without_a_box": {name: len(train) - len(train_gt[c])
                                                for c, name in enumerate(test.class_names)}, "runs": {}}
    for folder in args.results:
        detections = read_results(folder, test.class_names)
        record["runs"][folder] = [class_row(name, detections[name], test_gt[c], test_ids, args.score)
                                  for c, name in enumerate(test.class_names)]
        for row in record["runs"][folder]:
            print(f"{folder} {row['class']}: AP {row['ap_all_test_images']:.4f} on all {len(test)} test images, "
                  f"{row['ap_test_images_with_a_box']:.4f} without the {row['test_images_without_a_box']} that "
                  f"have no box of it; {row['confident_matching_no_box']} of {row['confident']} detections "
                  f"scoring >= {args.score} match no box, {row['confident_on_images_without_a_box']} of them on "
                  f"those images")
    with open(args.out, "w") as f:
        json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
