"""Pictures: detections drawn on images, per-class precision/recall curves, the AP table."""
import math
import os

import cv2
import numpy as np


def class_colours(count: int):
    """Distinct BGR colours, one per class."""
    hsv = np.stack([np.arange(count) * 180 // max(count, 1), np.full(count, 200), np.full(count, 255)], 1)
    return [tuple(int(c) for c in bgr) for bgr in cv2.cvtColor(hsv[None].astype(np.uint8), cv2.COLOR_HSV2BGR)[0]]


def draw_detections(image: np.ndarray, boxes, scores, labels, class_names, score_thresh: float = 0.0):
    """Boxes (pixels), class names and scores drawn on a copy of a uint8 BGR image."""
    out = image.copy()
    colours = class_colours(len(class_names))
    thickness = max(1, round(max(out.shape[:2]) / 400))
    for box, score, label in zip(np.asarray(boxes), np.asarray(scores), np.asarray(labels)):
        if score < score_thresh:
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        colour = colours[int(label)]
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        text = f"{class_names[int(label)]} {score:.2f}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, thickness)
        top = max(y1, th + 4)
        cv2.rectangle(out, (x1, top - th - 4), (x1 + tw + 2, top), colour, -1)
        cv2.putText(out, text, (x1 + 1, top - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, (0, 0, 0), thickness,
                    cv2.LINE_AA)
    return out


def plot_pr_curves(metrics: dict, path: str) -> str:
    """Per-class precision/recall curves of a VOC evaluation, with AP in the legend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for name, (recall, precision) in metrics["curves"].items():
        ap = metrics["AP"][name]
        if len(recall) and not math.isnan(ap):
            ax.plot(recall, precision, marker=".", markersize=3, label=f"{name} {ap:.3f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{metrics['metric']} mAP {metrics['mAP']:.4f}")
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path


def plot_ap_table(metrics: dict, path: str) -> str:
    """Per-class AP as a horizontal bar chart."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(metrics["AP"])
    values = [0.0 if math.isnan(metrics["AP"][n]) else metrics["AP"][n] for n in names]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(names) + 1.2))
    ax.barh(names[::-1], values[::-1], color="#4c72b0")
    for y, v in enumerate(values[::-1]):
        ax.text(v + 0.01, y, f"{v:.3f}", va="center", fontsize=8)
    ax.set_xlim(0, 1.1)
    ax.set_title(f"AP per class ({metrics['metric']}), mAP {metrics['mAP']:.4f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path


def image_grid(images, columns: int = 4, size: int = 300) -> np.ndarray:
    """Tile uint8 images (resized to size x size) into one picture."""
    tiles = [cv2.resize(im, (size, size)) for im in images]
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + columns], 1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, 0)


def write_examples(source, results: dict, path: str, count: int = 8, score_thresh: float = 0.4) -> str:
    """A grid of the first `count` evaluated images with their detections (score >= score_thresh)."""
    pictures = []
    for index in sorted(results)[:count]:
        image = source.load(index)[0]
        det = results[index]
        keep = det["scores"] >= score_thresh
        pictures.append(draw_detections(image, det["boxes"][keep], det["scores"][keep], det["labels"][keep],
                                        source.class_names))
    if pictures:
        ok, data = cv2.imencode(".jpg", image_grid(pictures, columns=min(4, len(pictures))),
                                [cv2.IMWRITE_JPEG_QUALITY, 90])
        with open(path, "wb") as f:  # any name: the caller may write through a temporary file
            f.write(data.tobytes())
    return path
