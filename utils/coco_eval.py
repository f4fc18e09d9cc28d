"""COCO box AP through pycocotools' COCOeval, and the detections JSON it reads."""
import contextlib
import io
import json
import os

STAT_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100", "AR_small",
              "AR_medium", "AR_large")


def coco_detections(detections: dict, category_ids) -> list:
    """{coco image id: dict(boxes [k, 4] pixel corners, scores [k], labels [k] 0..C-2)} -> COCO results entries
    (bbox as x, y, width, height; `category_ids[label]` maps a label back to its category id)."""
    out = []
    for image_id, det in detections.items():
        for (x1, y1, x2, y2), score, label in zip(det["boxes"].tolist(), det["scores"].tolist(),
                                                  det["labels"].tolist()):
            out.append({"image_id": image_id, "category_id": category_ids[label],
                        "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                        "score": round(score, 5)})
    return out


def score_coco(api, detections: dict, category_ids, output: str = None, class_names=None) -> dict:
    """COCOeval over the images of `detections` (see `coco_detections`), restricted to `category_ids`.
    -> {"metric": "coco", "mAP": AP@[.5:.95], "AP": {class name: AP}, "coco": {AP, AP50, ..., AR_large},
    "summary": COCOeval's printed table}: the per-class table under "AP" as in VOC metrics. COCOeval's -1 (no
    object of that kind or size to score) becomes None (null in JSON, "-" in tables)."""
    from pycocotools.cocoeval import COCOeval

    names = list(class_names) if class_names is not None else [str(c) for c in category_ids]
    results = coco_detections(detections, category_ids)
    if output:
        os.makedirs(output, exist_ok=True)
        with open(os.path.join(output, "detections_coco.json"), "w") as f:
            json.dump(results, f)
    # pycocotools cannot load an empty result list; one zero-area detection matches nothing and leaves every AP at
    # 0 where there is something to find and -1 (None) where there is not, as with real detections
    scored = results or [{"image_id": min(detections), "category_id": category_ids[0], "bbox": [0.0, 0.0, 0.0, 0.0],
                          "score": 1e-9}]
    with contextlib.redirect_stdout(io.StringIO()) as captured:
        evaluator = COCOeval(api, api.loadRes(scored), "bbox")
        evaluator.params.imgIds = sorted(detections)
        evaluator.params.catIds = list(category_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = {n: (float(v) if v >= 0 else None) for n, v in zip(STAT_NAMES, evaluator.stats)}
    precision = evaluator.eval["precision"]  # [IoU thresholds, recall points, classes, areas, max dets]
    per_class = {}
    for k, name in enumerate(names):
        values = precision[:, :, k, 0, -1]
        values = values[values > -1]
        per_class[name] = float(values.mean()) if values.size else None
    summary = "\n".join(line for line in captured.getvalue().splitlines() if line.lstrip().startswith("Average"))
    summary = summary.replace("-1.000", "     -")
    return {"metric": "coco", "mAP": stats["AP"], "AP": per_class, "coco": stats, "summary": summary}
