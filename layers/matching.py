"""Matching priors to ground truth (paper section 2.2), batched over images."""
import torch

from .box_utils import cxcywh_to_xyxy, pairwise_box_iou


def pad_targets(targets, device=None):
    """List of [n_i, 5] (x1, y1, x2, y2, label) -> padded [B, N, 5] with label -1 in the padding rows.

    An already padded [B, N, 5] tensor passes through.
    """
    if torch.is_tensor(targets):
        return targets if device is None else targets.to(device)
    max_len = max([len(t) for t in targets] + [1])
    padded = torch.zeros(len(targets), max_len, 5, device=device)
    padded[..., 4] = -1
    for i, t in enumerate(targets):
        padded[i, : len(t)] = t.to(padded)
    return padded


def bipartite_owners(iou: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Caffe SSD's greedy bipartite step (its MatchBBox): repeatedly the highest-IoU (ground truth, prior) pair
    among those not yet taken is matched, so every ground truth owns one prior, distinct from the others',
    whatever its IoU. iou [B, N, P] (padding rows -1), valid [B, N] -> owner [B, P] (ground-truth index, -1 none).
    The loop runs over the padded number of ground truths, not over images."""
    batch, num_gt, num_priors = iou.shape
    rows = torch.arange(batch, device=iou.device)
    owner = torch.full((batch, num_priors), -1, dtype=torch.long, device=iou.device)
    free = iou.masked_fill(~valid[..., None], -1.0)  # padding never takes a prior
    for _ in range(num_gt):
        best, flat = free.view(batch, -1).max(dim=1)
        gt_idx, prior_idx = flat // num_priors, flat % num_priors
        owner[rows, prior_idx] = torch.where(best > 0, gt_idx, owner[rows, prior_idx])
        free[rows, gt_idx, :] = -1.0
        free[rows, :, prior_idx] = -1.0
    return owner


def best_prior_owners(iou: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """ssd.pytorch's, NVIDIA's and torchvision's step: every ground truth claims the prior it overlaps most; when
    two claim the same prior the later one (in annotation order) owns it and the other keeps only its priors at
    IoU >= threshold. iou [B, N, P], valid [B, N] -> owner [B, P] (ground-truth index, -1 none)."""
    batch, num_gt, num_priors = iou.shape
    best_iou, best_prior = iou.max(dim=2)  # [B, N]
    index = torch.arange(num_gt, device=iou.device).expand(batch, num_gt)
    claims = torch.where(valid & (best_iou > 0), index, torch.full_like(index, -1))
    owner = torch.full((batch, num_priors), -1, dtype=torch.long, device=iou.device)
    return owner.scatter_reduce(1, best_prior, claims, reduce="amax")


MATCHINGS = {"bipartite": bipartite_owners, "best-prior": best_prior_owners}


def match_priors(gt_boxes: torch.Tensor, gt_labels: torch.Tensor, priors_cxcywh: torch.Tensor,
                 threshold: float = 0.5, matching: str = "bipartite"):
    """Assign ground truth to priors for a whole batch (paper section 2.2).

    gt_boxes [B, N, 4] (x1, y1, x2, y2), gt_labels [B, N] int (0..C-2, negative = padding), priors [P, 4]
    -> matched boxes [B, P, 4] and matched labels [B, P] (0 = background, else class + 1).

    First every ground truth is given a prior whatever its IoU (`matching`: "bipartite", Caffe's greedy step, or
    "best-prior", see MATCHINGS); then every other prior takes the ground truth it overlaps most if that
    IoU >= threshold.
    """
    valid = gt_labels >= 0
    iou = pairwise_box_iou(gt_boxes, cxcywh_to_xyxy(priors_cxcywh)[None])  # [B, N, P]
    iou = iou.masked_fill(~valid[..., None], -1.0)
    owner = MATCHINGS[matching](iou, valid)

    best_iou, best_gt = iou.max(dim=1)  # [B, P]
    forced = owner >= 0
    matched_gt = torch.where(forced, owner, best_gt)
    positive = forced | (best_iou >= threshold)
    labels = gt_labels.long().gather(1, matched_gt) + 1
    labels = torch.where(positive, labels, torch.zeros_like(labels))
    boxes = gt_boxes.gather(1, matched_gt[..., None].expand(-1, -1, 4))
    return boxes, labels
