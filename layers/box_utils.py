"""Box math. Boxes are continuous corner coordinates (x1, y1, x2, y2) unless a name says cxcywh."""
import torch
from torchvision.ops import box_iou


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """[..., 4] (cx, cy, w, h) -> [..., 4] (x1, y1, x2, y2)."""
    centre, size = boxes[..., :2], boxes[..., 2:]
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """[..., 4] (x1, y1, x2, y2) -> [..., 4] (cx, cy, w, h)."""
    return torch.cat([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], dim=-1)


def batched_box_iou(boxes: torch.Tensor, priors_xyxy: torch.Tensor) -> torch.Tensor:
    """IoU of every box of every image with every prior: [B, N, 4] x [P, 4] -> [B, N, P]."""
    batch, num = boxes.shape[:2]
    return box_iou(boxes.reshape(-1, 4), priors_xyxy).view(batch, num, -1)


def pairwise_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU of every pair within each group: [..., N, 4] x [..., M, 4] -> [..., N, M] (torchvision's formula)."""
    x1, y1, x2, y2 = (boxes1[..., i, None] for i in range(4))  # [..., N, 1]
    u1, v1, u2, v2 = (boxes2[..., None, :, i] for i in range(4))  # [..., 1, M]
    inter = (torch.minimum(x2, u2) - torch.maximum(x1, u1)).clamp_(min=0) * \
        (torch.minimum(y2, v2) - torch.maximum(y1, v1)).clamp_(min=0)
    return inter / ((x2 - x1) * (y2 - y1) + (u2 - u1) * (v2 - v1) - inter)


def encode(matched_xyxy: torch.Tensor, priors_cxcywh: torch.Tensor, variances=(0.1, 0.2)) -> torch.Tensor:
    """Regression targets of the paper's eq. 2: [..., P, 4] boxes against [P, 4] priors -> [..., P, 4] offsets."""
    matched = xyxy_to_cxcywh(matched_xyxy)
    centre = (matched[..., :2] - priors_cxcywh[:, :2]) / (variances[0] * priors_cxcywh[:, 2:])
    # Padding/background rows may hold zero-size boxes; their targets are masked out, but must stay finite.
    size = torch.log(matched[..., 2:].clamp(min=1e-8) / priors_cxcywh[:, 2:]) / variances[1]
    return torch.cat([centre, size], dim=-1)


def decode(loc: torch.Tensor, priors_cxcywh: torch.Tensor, variances=(0.1, 0.2)) -> torch.Tensor:
    """Inverse of `encode`: [..., P, 4] offsets against [P, 4] priors -> [..., P, 4] (x1, y1, x2, y2)."""
    centre = priors_cxcywh[:, :2] + loc[..., :2] * variances[0] * priors_cxcywh[:, 2:]
    size = priors_cxcywh[:, 2:] * torch.exp(loc[..., 2:] * variances[1])
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)
