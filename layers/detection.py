"""Post-processing: class scores and box offsets -> detections per image, batched over images and classes."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import batched_nms

from .box_utils import decode


def _pairwise_iou_rows(selected: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """IoU of one box per group with every box of its group: [G, 4] x [G, K, 4] -> [G, K]."""
    top_left = torch.maximum(selected[:, None, :2], boxes[..., :2])
    bottom_right = torch.minimum(selected[:, None, 2:], boxes[..., 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    area_sel = (selected[:, 2:] - selected[:, :2]).prod(dim=-1)[:, None]
    area = (boxes[..., 2:] - boxes[..., :2]).prod(dim=-1)
    return inter / (area_sel + area - inter).clamp(min=1e-12)


def soft_nms(boxes: torch.Tensor, scores: torch.Tensor, iterations: int, method: str = "gaussian",
             sigma: float = 0.5, iou_thresh: float = 0.3, score_thresh: float = 0.01):
    """Soft-NMS (Bodla et al., 2017) on many independent groups at once.

    boxes [G, K, 4], scores [G, K] -> kept scores [G, T] (0 where nothing was kept) and indices [G, T] into K,
    T = min(iterations, K). Each step picks the highest remaining score of every group and rescales the rest:
    linear s_i *= (1 - iou) where iou >= iou_thresh; gaussian s_i *= exp(-iou^2 / sigma).
    """
    if method not in ("linear", "gaussian"):
        raise ValueError(f"soft-NMS method must be 'linear' or 'gaussian', got {method!r}")
    groups, k = scores.shape
    steps = min(iterations, k)
    rows = torch.arange(groups, device=scores.device)
    active = torch.where(scores >= score_thresh, scores, torch.zeros_like(scores))
    kept_scores = scores.new_zeros(groups, steps)
    kept_index = torch.zeros(groups, steps, dtype=torch.long, device=scores.device)
    for step in range(steps):
        best, index = active.max(dim=1)
        kept_scores[:, step] = best
        kept_index[:, step] = index
        iou = _pairwise_iou_rows(boxes[rows, index], boxes)
        if method == "linear":
            decay = torch.where(iou >= iou_thresh, 1 - iou, torch.ones_like(iou))
        else:
            decay = torch.exp(-(iou * iou) / sigma)
        active = active * decay
        active[rows, index] = 0
        active = torch.where(active >= score_thresh, active, torch.zeros_like(active))
    kept_scores = torch.where(kept_scores >= score_thresh, kept_scores, torch.zeros_like(kept_scores))
    return kept_scores, kept_index


def postprocess(loc: torch.Tensor, conf: torch.Tensor, priors_cxcywh: torch.Tensor, variances=(0.1, 0.2),
                conf_thresh: float = 0.01, nms_thresh: float = 0.45, top_k: int = 200,
                pre_nms_top_k: int = 400, nms: str = "hard", soft_method: str = "gaussian",
                soft_sigma: float = 0.5):
    """loc [B, P, 4], conf [B, P, C] logits, priors [P, 4] -> list of B dicts with
    boxes [k, 4] (x1, y1, x2, y2 in [0, 1]), scores [k], labels [k] (class 0..C-2, background excluded).

    Softmax, decode, per class: scores >= conf_thresh, the best `pre_nms_top_k`, NMS at `nms_thresh`
    (`nms='soft'`: Soft-NMS); then the best `top_k` of each image over all classes.
    """
    batch, num_priors, num_classes = conf.shape
    fg = num_classes - 1
    boxes = decode(loc.float(), priors_cxcywh.to(loc.device, torch.float32), variances)  # [B, P, 4]
    scores = F.softmax(conf.float(), dim=-1)[..., 1:].transpose(1, 2)  # [B, C-1, P]
    k = min(pre_nms_top_k, num_priors)
    cand_scores, cand_index = scores.topk(k, dim=2)  # [B, C-1, K]
    cand_boxes = boxes.gather(1, cand_index.reshape(batch, -1, 1).expand(-1, -1, 4)).view(batch, fg, k, 4)

    if nms == "soft":
        kept, kept_index = soft_nms(cand_boxes.view(-1, k, 4), cand_scores.view(-1, k), top_k, soft_method,
                                    soft_sigma, nms_thresh, conf_thresh)
        steps = kept.shape[1]
        flat_boxes = cand_boxes.view(-1, k, 4).gather(1, kept_index[..., None].expand(-1, -1, 4))
        flat_boxes, flat_scores = flat_boxes.view(batch, -1, 4), kept.view(batch, -1)
        flat_labels = torch.arange(fg, device=loc.device).repeat_interleave(steps).expand(batch, -1)
        top_scores, order = flat_scores.topk(min(top_k, flat_scores.shape[1]), dim=1)  # sorted, 0 = nothing kept
        top_boxes = flat_boxes.gather(1, order[..., None].expand(-1, -1, 4))
        top_labels = flat_labels.gather(1, order)
        counts = (top_scores > 0).sum(dim=1).tolist()
        return [dict(boxes=top_boxes[b, :n], scores=top_scores[b, :n], labels=top_labels[b, :n])
                for b, n in enumerate(counts)]
    if nms != "hard":
        raise ValueError(f"nms must be 'hard' or 'soft', got {nms!r}")

    keep_mask = cand_scores >= conf_thresh
    image_idx, class_idx, _ = keep_mask.nonzero(as_tuple=True)
    flat_boxes, flat_scores = cand_boxes[keep_mask], cand_scores[keep_mask]
    keep = batched_nms(flat_boxes, flat_scores, image_idx * fg + class_idx, nms_thresh)  # sorted by score
    image_of_keep = image_idx[keep]
    order = image_of_keep.argsort(stable=True)  # by image, score-descending within each image
    keep, image_of_keep = keep[order], image_of_keep[order]
    counts = torch.bincount(image_of_keep, minlength=batch)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(keep), device=keep.device) - starts[image_of_keep]
    keep = keep[rank < top_k]
    per_image = counts.clamp(max=top_k).tolist()
    out_boxes, out_scores, out_labels = (t[keep].split(per_image) for t in (flat_boxes, flat_scores, class_idx))
    return [dict(boxes=b, scores=s, labels=l) for b, s, l in zip(out_boxes, out_scores, out_labels)]


class PostProcessor(nn.Module):
    """`postprocess` with its settings bound: `PostProcessor(...)(loc, conf, priors)`."""

    def __init__(self, variances=(0.1, 0.2), conf_thresh=0.01, nms_thresh=0.45, top_k=200, pre_nms_top_k=400,
                 nms="hard", soft_method="gaussian", soft_sigma=0.5):
        super().__init__()
        self.settings = dict(variances=tuple(variances), conf_thresh=conf_thresh, nms_thresh=nms_thresh,
                             top_k=top_k, pre_nms_top_k=pre_nms_top_k, nms=nms, soft_method=soft_method,
                             soft_sigma=soft_sigma)

    @classmethod
    def from_config(cls, cfg, **overrides):
        settings = dict(variances=cfg.priors()["variance"], conf_thresh=cfg.conf_thresh, nms_thresh=cfg.nms_thresh,
                        top_k=cfg.top_k, pre_nms_top_k=cfg.pre_nms_top_k, nms=cfg.nms,
                        soft_method=cfg.soft_nms_method, soft_sigma=cfg.soft_nms_sigma)
        settings.update(overrides)
        return cls(**settings)

    def forward(self, loc, conf, priors_cxcywh):
        return postprocess(loc, conf, priors_cxcywh, **self.settings)


Detect = PostProcessor  # ssd.pytorch's name
