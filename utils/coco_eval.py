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


def score_coco(api, detections: dict, category_ids, output: str = None) -> dict:
    """COCOeval over the images of `detections` (see `coco_detections`), restricted to `category_ids`.
    -> {"metric": "coco", "mAP": AP, AP50, ..., "summary": COCOeval's printed table}."""
    from pycocotools.cocoeval import COCOeval

    results = coco_detections(detections, category_ids)
    if output:
        os.makedirs(output, exist_ok=True)
        with open(os.path.join(output, "detections_coco.json"), "w") as f:
            json.dump(results, f)
    if not results:
        return {"metric": "coco", "mAP": 0.0, **{n: 0.0 for n in STAT_NAMES}}
    with contextlib.redirect_stdout(io.StringIO()) as captured:
        evaluator = COCOeval(api, api.loadRes(results), "bbox")
        evaluator.params.imgIds = sorted(detections)
        evaluator.params.catIds = list(category_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = {n: float(v) for n, v in zip(STAT_NAMES, evaluator.stats)}
    summary = "\n".join(line for line in captured.getvalue().splitlines() if line.lstrip().startswith("Average"))
    return {"metric": "coco", "mAP": stats["AP"], **stats, "summary": summary}
