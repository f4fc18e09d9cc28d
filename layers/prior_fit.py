"""Prior coverage, and prior layouts fitted to the boxes of a dataset.

Boxes are normalised corners (x1, y1, x2, y2) of the square network input, as the test-time resize makes them.
A box is *covered* when its best prior reaches the matching threshold (--overlap-thresh): only then does the loss
give it a positive prior of its own at that threshold.

`NearestCells` computes every box's best IoU exactly from its nearest cell on each map, so coverage of a COCO-sized
box set takes seconds. `fit_layout` keeps a layout's feature maps, steps, aspect ratios and number of priors per
location (so the heads and FLOPs) and chooses its prior sizes by the paper's linear scale rule (section 2.2: evenly
spaced from the smallest to the largest), the two ends fitted to cover the most boxes; where that covers no more
boxes than the layout, the layout stays. (A free search of each map's size and aspect ratios covered more of BCCD's
boxes, 95.4% against 94.5%, but trained to a lower mAP, 0.70 against 0.78: benchmarks/RESULTS.md.)
"""
import math
import time
from typing import NamedTuple

import numpy as np
import torch

from config import with_sizes

from .prior_box import PriorBox

# Size buckets by the box's side sqrt(w * h) in input pixels (COCO's small / medium / large, at the input size).
SIZE_BUCKETS = (("small (< 32 px)", 0.0, 32.0), ("medium (32-96 px)", 32.0, 96.0), ("large (>= 96 px)", 96.0, math.inf))
FIT_BOXES = 20000
# The fit maximises coverage + IOU_WEIGHT x the mean best IoU: 1% more boxes matched is worth 0.04 of mean IoU,
# so it does not buy a last few boxes with priors that fit every other box worse.
IOU_WEIGHT = 0.25


class Coverage(NamedTuple):
    boxes: int
    covered: float  # share of the boxes whose best prior reaches the threshold
    median_iou: float  # median over the boxes of their best prior's IoU


class PriorFit(NamedTuple):
    layout: dict  # the chosen layout (PriorBox keys): the fitted one, or the given one where the fit gains nothing
    kind: str  # "fitted", or "layout" where the given layout matches as many boxes
    sample: dict  # {"layout" | "fitted": Coverage} on the boxes the fit used
    seconds: float


def summarize(best_iou: torch.Tensor, thresh: float) -> Coverage:
    if len(best_iou) == 0:
        return Coverage(0, math.nan, math.nan)
    return Coverage(len(best_iou), float((best_iou >= thresh).float().mean()), float(best_iou.median()))


def breakdown(best_iou: torch.Tensor, labels: torch.Tensor, boxes: torch.Tensor, size: int, class_names,
              thresh: float) -> list:
    """Coverage per class and per size bucket: [(name, Coverage)], classes first."""
    side = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=0).sqrt() * size
    rows = [(name, summarize(best_iou[labels == label], thresh)) for label, name in enumerate(class_names)]
    rows += [(name, summarize(best_iou[(side >= low) & (side < high)], thresh)) for name, low, high in SIZE_BUCKETS]
    return rows


class NearestCells:
    """Each box's best IoU on one feature map for given prior shapes, exactly and without trying every cell.

    A prior's corners are not clipped (PriorBox clamps only w and h to 1), so on one map every prior of a shape has
    the same area and its IoU with a box grows with the overlap, which on each axis shrinks with the distance
    between the centres: the best prior of each shape sits at the box's nearest cell. The offsets to that cell are
    computed once per map; a candidate set of shapes costs a few elementwise operations per box."""

    def __init__(self, boxes: torch.Tensor, layout: dict):
        self.layout = layout
        boxes = boxes.float()
        self.wh = boxes[:, 2:] - boxes[:, :2]  # [N, 2]
        self.area = self.wh.prod(1)
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        self.offsets = []  # per map [N, 2]: |box centre - nearest cell centre|
        for fmap, step in zip(layout["feature_maps"], layout["steps"]):
            pitch = step / layout["min_dim"]
            cell = ((centre / pitch - 0.5).round().clamp(0, fmap - 1) + 0.5) * pitch
            self.offsets.append((centre - cell).abs())

    def shapes(self, min_size: float, max_size: float, ratios) -> torch.Tensor:
        one_map = dict(min_dim=self.layout["min_dim"], feature_maps=[1], steps=[1], min_sizes=[min_size],
                       max_sizes=[max_size], aspect_ratios=[list(ratios)], clip=self.layout["clip"])
        wh = PriorBox(one_map).shapes()[0].float()
        return wh.clamp(max=1) if self.layout["clip"] else wh

    def map_iou(self, k: int, min_size: float, max_size: float, ratios) -> torch.Tensor:
        """[N] each box's best IoU with map k's priors of these sizes and aspect ratios."""
        prior = self.shapes(min_size, max_size, ratios)  # [A, 2]
        box, offset = self.wh[:, None, :], self.offsets[k][:, None, :]  # [N, 1, 2]
        overlap = torch.minimum(torch.minimum((box + prior) / 2 - offset, box), prior).clamp_(min=0)  # [N, A, 2]
        inter = overlap.prod(-1)
        return (inter / (self.area[:, None] + prior.prod(-1) - inter)).amax(1)

    def best_iou(self, layout: dict) -> torch.Tensor:
        """[N] each box's best IoU over every prior of `layout` (the maps and steps of this one)."""
        return self.per_map(layout["min_sizes"], layout["max_sizes"], layout["aspect_ratios"]).amax(0)

    def per_map(self, min_sizes, max_sizes, ratios) -> torch.Tensor:
        return torch.stack([self.map_iou(k, *shape) for k, shape in enumerate(zip(min_sizes, max_sizes, ratios))])


def coverage_of(boxes: torch.Tensor, layout: dict, thresh: float) -> tuple:
    """-> (Coverage, [N] best IoU) of `layout`'s priors over `boxes` ([N, 4] normalised corners)."""
    best = NearestCells(boxes, layout).best_iou(layout)
    return summarize(best, thresh), best


def _linear_sizes(low: float, high: float, maps: int) -> list:
    return [low + (high - low) * k / (maps - 1) for k in range(maps)] if maps > 1 else [low]


def fit_layout(boxes: torch.Tensor, layout: dict, thresh: float = 0.5, max_boxes: int = FIT_BOXES,
               seed: int = 0) -> PriorFit:
    """The paper's linear scale rule (sizes evenly spaced from the smallest to the largest, one per map) whose two
    ends match the most of `boxes` ([N, 4] normalised corners), with `layout`'s maps, steps, aspect ratios and so
    priors per location. Deterministic: at most `max_boxes` boxes, drawn with `seed`."""
    start = time.perf_counter()
    if len(boxes) > max_boxes:
        pick = np.sort(np.random.default_rng(seed).choice(len(boxes), max_boxes, replace=False))
        boxes = boxes[torch.from_numpy(pick)]
    cells = NearestCells(boxes, layout)
    maps, top, size = len(layout["feature_maps"]), float(layout["max_sizes"][-1]), float(layout["min_dim"])

    def score(low: float, high: float) -> float:
        sizes = _linear_sizes(low, high, maps)
        best = cells.per_map(sizes, sizes[1:] + [top], layout["aspect_ratios"]).amax(0)
        return float((best >= thresh).float().mean() + IOU_WEIGHT * best.mean())

    def valid(low: float, high: float) -> bool:  # the last extra prior sqrt(high * top) stays a shape of its own
        return 1 <= low and (maps == 1 or low * 1.05 < high) and high <= 0.95 * top

    # a grid over the two ends, then finer and finer steps around the best
    candidates = [(float(low), float(high)) for low in np.geomspace(0.02 * size, 0.6 * size, 20)
                  for high in np.geomspace(0.15 * size, 0.95 * top, 14)]
    best = max((c for c in candidates if valid(*c)), key=lambda c: score(*c))
    for step in (1.15, 1.05, 1.015):
        improved = True
        while improved:
            around = [(best[0] * a, best[1] * b) for a in (1 / step, 1, step) for b in (1 / step, 1, step)]
            new = max((c for c in around if valid(*c)), key=lambda c: score(*c))
            improved, best = score(*new) > score(*best), new
    fitted = with_sizes(layout, [round(s, 1) for s in _linear_sizes(*best, maps)])
    sample = {"layout": summarize(cells.best_iou(layout), thresh), "fitted": summarize(cells.best_iou(fitted), thresh)}
    better = round(sample["fitted"].covered * len(boxes)) > round(sample["layout"].covered * len(boxes))
    return PriorFit(fitted if better else layout, "fitted" if better else "layout", sample,
                    time.perf_counter() - start)
