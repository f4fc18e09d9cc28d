"""Post-processing: class scores and box offsets -> detections per image, batched over images and classes."""
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import batched_nms

from .box_utils import BoxCoder, pairwise_box_iou


def greedy_nms(boxes: torch.Tensor, valid: torch.Tensor, iou_thresh: float, nms_rounds: int = None,
               chunk_elements: int = 2 ** 26):
    """Greedy NMS on many independent groups of score-sorted boxes at once, in fixed shapes.

    boxes [G, K, 4] (each group sorted by descending score), valid [G, K] bool -> keep [G, K] bool and a 0-d
    bool `converged`. A box is kept iff it is valid and no kept box before it overlaps it by IoU > iou_thresh:
    the same boxes as torchvision's `nms`. That recursive definition is the fixed point of
    `keep <- valid & not suppressed by keep`, reached from `keep = valid` in at most K rounds (after round t the
    first t boxes are final) and in practice in a few (as in Cluster-NMS, Zheng et al. 2020). `nms_rounds=None`
    iterates to the fixed point (one host sync per round); an int >= 1 runs exactly that many rounds without a
    sync (for CUDA graphs) and `converged` tells whether the result is final. Groups go in chunks of at most
    `chunk_elements` IoU entries, which bounds the memory.
    """
    groups, k = valid.shape
    pad = -k % 8  # whole bytes of bits: padding boxes are invalid, so they are never kept and suppress nothing
    boxes = torch.cat([boxes, boxes.new_zeros(groups, pad, 4)], 1)
    valid = torch.cat([valid, valid.new_zeros(groups, pad)], 1)
    chunk = max(1, chunk_elements // (k + pad) ** 2)
    results = [_greedy_nms_rounds(suppression_bits(b, iou_thresh), v, nms_rounds)
               for b, v in zip(boxes.split(chunk), valid.split(chunk))]
    keep, converged = zip(*results)
    return torch.cat(keep)[:, :k], torch.stack(converged).all()


def sorted_greedy_nms(boxes: torch.Tensor, valid: torch.Tensor, iou_thresh: float) -> torch.Tensor:
    """`greedy_nms` (exact, the same boxes) through torchvision's sorted greedy `batched_nms`, which does far less
    work than the fixed-shape form when many candidates pass the score threshold: the CPU path.
    boxes [G, K, 4] (each group sorted), valid [G, K] -> keep [G, K]. The order within a group is the candidates'
    (their rank is the score given to torchvision), so exact score ties resolve as in `greedy_nms`."""
    group, index = valid.nonzero(as_tuple=True)
    kept = batched_nms(boxes[group, index], -index.float(), group, iou_thresh)
    keep = torch.zeros_like(valid)
    keep[group[kept], index[kept]] = True
    return keep


def suppression_bits(boxes: torch.Tensor, iou_thresh: float) -> torch.Tensor:
    """boxes [G, K, 4] (K a multiple of 8) -> uint8 [G, K, K/8]: bit i of row j is set when box i comes before
    box j and their IoU > iou_thresh. IoU is symmetric, so the mask is built row by row of `j`; packed 8 per byte,
    a round of NMS reads K*K/8 bytes per group (a float matrix product would read 16-32x more). On CUDA one
    Triton kernel writes the bits directly (layers/nms_kernel.py); elsewhere the eager reference below."""
    if boxes.is_cuda and _has_triton():
        from .nms_kernel import suppression_bits_triton
        return suppression_bits_triton(boxes, iou_thresh)
    return suppression_bits_eager(boxes, iou_thresh)


def _has_triton() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def suppression_bits_eager(boxes: torch.Tensor, iou_thresh: float) -> torch.Tensor:
    """`suppression_bits` in eager operations: the reference (and the CPU path)."""
    index = torch.arange(boxes.shape[1], device=boxes.device)
    earlier = index[None, :] < index[:, None]  # [K, K]: the column's box comes before the row's
    return _pack_bits((pairwise_box_iou(boxes, boxes) > iou_thresh) & earlier)


def _pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """bool [..., 8n] -> uint8 [..., n], bit b of byte w = mask[..., 8w + b]."""
    weights = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8, device=mask.device)
    return (mask.unflatten(-1, (-1, 8)).to(torch.uint8) * weights).sum(-1, dtype=torch.uint8)


def _greedy_nms_rounds(suppressors, valid, nms_rounds):
    def suppressed(keep):
        return (suppressors & _pack_bits(keep)[:, None, :]).amax(dim=2) > 0

    keep = valid
    if nms_rounds is None:
        while True:
            previous, keep = keep, valid & ~suppressed(keep)
            if torch.equal(keep, previous):
                return keep, torch.ones((), dtype=torch.bool, device=valid.device)
    for _ in range(nms_rounds):
        previous, keep = keep, valid & ~suppressed(keep)
    return keep, (keep == previous).all()


def soft_nms(boxes: torch.Tensor, scores: torch.Tensor, max_kept: int, method: str = "gaussian",
             sigma: float = 0.5, iou_thresh: float = 0.3, score_thresh: float = 0.01):
    """Soft-NMS (Bodla et al., 2017) on many independent groups at once.

    boxes [G, K, 4], scores [G, K] -> kept scores [G, T] (0 where nothing was kept) and indices [G, T] into K,
    T = min(max_kept, K). Each step picks the highest remaining score of every group and rescales the rest:
    linear s_i *= (1 - iou) where iou >= iou_thresh; gaussian s_i *= exp(-iou^2 / sigma).
    """
    if method not in ("linear", "gaussian"):
        raise ValueError(f"soft-NMS method must be 'linear' or 'gaussian', got {method!r}")
    groups, k = scores.shape
    steps = min(max_kept, k)
    rows = torch.arange(groups, device=scores.device)
    active = torch.where(scores >= score_thresh, scores, torch.zeros_like(scores))
    kept_scores = scores.new_zeros(groups, steps)
    kept_index = torch.zeros(groups, steps, dtype=torch.long, device=scores.device)
    for step in range(steps):
        best, index = active.max(dim=1)
        kept_scores[:, step] = best
        kept_index[:, step] = index
        iou = pairwise_box_iou(boxes[rows, index][:, None], boxes)[:, 0].nan_to_num(0.0)  # [G, K]
        if method == "linear":
            decay = torch.where(iou >= iou_thresh, 1 - iou, torch.ones_like(iou))
        else:
            decay = torch.exp(-(iou * iou) / sigma)
        active = active * decay
        active[rows, index] = 0
        active = torch.where(active >= score_thresh, active, torch.zeros_like(active))
    kept_scores = torch.where(kept_scores >= score_thresh, kept_scores, torch.zeros_like(kept_scores))
    return kept_scores, kept_index


class PaddedDetections(NamedTuple):
    """Fixed-shape detections of a batch: each image's first `counts[b]` entries, by descending score, then zeros."""
    boxes: torch.Tensor  # [B, T, 4] (x1, y1, x2, y2) clipped to [0, 1]
    scores: torch.Tensor  # [B, T]
    labels: torch.Tensor  # [B, T] class 0..C-2
    counts: torch.Tensor  # [B]
    converged: torch.Tensor  # 0-d bool: False when a fixed number of NMS rounds did not reach the fixed point


def postprocess_padded(loc: torch.Tensor, conf: torch.Tensor, box_coder: BoxCoder, score_thresh: float = 0.01,
                       nms_thresh: float = 0.45, top_k: int = 200, pre_nms_top_k: int = 400, nms: str = "hard",
                       soft_nms_method: str = "gaussian", soft_nms_sigma: float = 0.5,
                       nms_rounds: int = None) -> PaddedDetections:
    """loc [B, P, 4], conf [B, P, C] logits, the model's box coder -> PaddedDetections;
    T <= top_k (exactly min(top_k, (C-1) x pre_nms_top_k) with `nms_rounds`).

    Softmax, decode (clipped to the image, as Caffe SSD's detection output), per class: the best `pre_nms_top_k`
    priors, those with score >= score_thresh go through NMS at `nms_thresh` (`nms='soft'`: Soft-NMS); then the best
    `top_k` of each image over all classes. `nms_rounds`: see `greedy_nms` (None = exact with host syncs; an int =
    sync-free, for CUDA graphs). On a CPU the exact path is `sorted_greedy_nms` (same detections, less work).
    """
    if nms not in ("hard", "soft"):
        raise ValueError(f"nms must be 'hard' or 'soft', got {nms!r}")
    batch = conf.shape[0]
    cand_boxes, cand_scores = class_candidates(loc, conf, box_coder, pre_nms_top_k)
    if nms_rounds is None:  # eager: drop the columns no class fills above the threshold (one host sync)
        k = max(1, int((cand_scores >= score_thresh).sum(dim=1).max()))
        cand_boxes, cand_scores = cand_boxes[:, :k], cand_scores[:, :k]

    if nms == "soft":
        kept_scores, kept_index = soft_nms(cand_boxes, cand_scores, top_k, soft_nms_method, soft_nms_sigma,
                                           nms_thresh, score_thresh)
        cand_boxes = cand_boxes.gather(1, kept_index[..., None].expand(-1, -1, 4))
        keep = kept_scores > 0
        converged = torch.ones((), dtype=torch.bool, device=loc.device)
    elif nms_rounds is None and loc.device.type == "cpu":
        kept_scores = cand_scores
        keep = sorted_greedy_nms(cand_boxes, cand_scores >= score_thresh, nms_thresh)
        converged = torch.ones((), dtype=torch.bool)
    else:
        kept_scores = cand_scores
        keep, converged = greedy_nms(cand_boxes, cand_scores >= score_thresh, nms_thresh, nms_rounds)

    return PaddedDetections(*rank_detections(cand_boxes, kept_scores, keep, batch, top_k), converged)


def class_candidates(loc: torch.Tensor, conf: torch.Tensor, box_coder: BoxCoder, pre_nms_top_k: int) -> tuple:
    """loc [B, P, 4], conf [B, P, C] logits -> each image's and class's best K = min(pre_nms_top_k, P) priors as
    candidates: boxes [B * (C-1), K, 4] (decoded, clipped to the image as Caffe SSD's detection output) and their
    softmax scores [B * (C-1), K], sorted. Shared by the eager path and the exported graph (engine/deploy.py)."""
    batch, num_priors, num_classes = conf.shape
    boxes = box_coder.decode(loc.float()).clamp(0, 1)  # [B, P, 4]
    scores = F.softmax(conf.float(), dim=-1)[..., 1:].transpose(1, 2)  # [B, C-1, P]
    k = min(pre_nms_top_k, num_priors)
    cand_scores, cand_index = scores.topk(k, dim=2)  # [B, C-1, K], sorted
    cand_boxes = boxes.gather(1, cand_index.reshape(batch, -1, 1).expand(-1, -1, 4))
    return cand_boxes.reshape(batch * (num_classes - 1), k, 4), cand_scores.reshape(batch * (num_classes - 1), k)


def rank_detections(cand_boxes: torch.Tensor, scores: torch.Tensor, keep: torch.Tensor, batch: int,
                    top_k: int) -> tuple:
    """The candidates NMS kept (boxes [B * (C-1), K, 4], scores and keep [B * (C-1), K]) -> each image's best
    `top_k` over all classes: boxes [B, T, 4], scores [B, T], labels [B, T] (the class a candidate's row is of),
    counts [B]; the rows past an image's count are zeros."""
    per_class = keep.shape[1]
    ranked = torch.where(keep, scores, -torch.ones_like(scores)).reshape(batch, -1)
    top_scores, order = ranked.topk(min(top_k, ranked.shape[1]), dim=1)  # [B, T]
    found = top_scores >= 0
    top_boxes = cand_boxes.reshape(batch, -1, 4).gather(1, order[..., None].expand(-1, -1, 4)) * found[..., None]
    top_labels = torch.div(order, per_class, rounding_mode="floor") * found
    return top_boxes, top_scores * found, top_labels, found.sum(dim=1)


def postprocess(loc: torch.Tensor, conf: torch.Tensor, box_coder: BoxCoder, **settings) -> list:
    """`postprocess_padded` (same settings, exact) -> list of B dicts: boxes [k, 4], scores [k], labels [k]."""
    return unpad_detections(*postprocess_padded(loc, conf, box_coder, **settings)[:4])


def unpad_detections(boxes, scores, labels, counts) -> list:
    """Fixed-shape detections [B, T, ...] and counts [B] -> list of B dicts with each image's first counts[b]."""
    return [dict(boxes=b[:n], scores=s[:n], labels=c[:n])
            for b, s, c, n in zip(boxes, scores, labels, counts.tolist())]


class PostProcessor(nn.Module):
    """`postprocess` with the model's box coder and the settings bound: `PostProcessor(box_coder)(loc, conf)`."""

    def __init__(self, box_coder: BoxCoder, score_thresh=0.01, nms_thresh=0.45, top_k=200, pre_nms_top_k=400,
                 nms="hard", soft_nms_method="gaussian", soft_nms_sigma=0.5):
        super().__init__()
        self.box_coder = box_coder
        self.settings = dict(score_thresh=score_thresh, nms_thresh=nms_thresh, top_k=top_k,
                             pre_nms_top_k=pre_nms_top_k, nms=nms, soft_nms_method=soft_nms_method,
                             soft_nms_sigma=soft_nms_sigma)

    @classmethod
    def from_config(cls, cfg, box_coder: BoxCoder, **overrides) -> "PostProcessor":
        settings = {key: getattr(cfg.test, key) for key in ("score_thresh", "nms_thresh", "top_k", "pre_nms_top_k",
                                                             "nms",
                                                        "soft_nms_method", "soft_nms_sigma")}
        return cls(box_coder, **dict(settings, **overrides))

    def forward(self, loc, conf) -> list:
        return postprocess(loc, conf, self.box_coder, **self.settings)

    def padded(self, loc, conf, nms_rounds: int = None) -> PaddedDetections:
        """`postprocess_padded` with these settings."""
        return postprocess_padded(loc, conf, self.box_coder, **self.settings, nms_rounds=nms_rounds)
