"""Box math. Boxes are continuous corner coordinates (x1, y1, x2, y2) unless a name says cxcywh."""
import torch
import torch.nn as nn


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """[..., 4] (cx, cy, w, h) -> [..., 4] (x1, y1, x2, y2)."""
    centre, size = boxes[..., :2], boxes[..., 2:]
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """[..., 4] (x1, y1, x2, y2) -> [..., 4] (cx, cy, w, h)."""
    return torch.cat([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], dim=-1)


def pairwise_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU of every pair within each group, batch dimensions broadcast: [..., N, 4] x [..., M, 4] -> [..., N, M]
    (torchvision's `box_iou` formula; the one IoU of the model side)."""
    x1, y1, x2, y2 = (boxes1[..., i, None] for i in range(4))  # [..., N, 1]
    u1, v1, u2, v2 = (boxes2[..., None, :, i] for i in range(4))  # [..., 1, M]
    inter = (torch.minimum(x2, u2) - torch.maximum(x1, u1)).clamp_(min=0) * \
        (torch.minimum(y2, v2) - torch.maximum(y1, v1)).clamp_(min=0)
    return inter / ((x2 - x1) * (y2 - y1) + (u2 - u1) * (v2 - v1) - inter)


def encode(matched_xyxy: torch.Tensor, priors_cxcywh: torch.Tensor, variances) -> torch.Tensor:
    """Regression targets of the paper's eq. 2: [..., P, 4] boxes against [P, 4] priors -> [..., P, 4] offsets."""
    matched = xyxy_to_cxcywh(matched_xyxy)
    centre = (matched[..., :2] - priors_cxcywh[:, :2]) / (variances[0] * priors_cxcywh[:, 2:])
    # Padding/background rows may hold zero-size boxes; their targets are masked out, but must stay finite.
    size = torch.log(matched[..., 2:].clamp(min=1e-8) / priors_cxcywh[:, 2:]) / variances[1]
    return torch.cat([centre, size], dim=-1)


def decode(loc: torch.Tensor, priors_cxcywh: torch.Tensor, variances) -> torch.Tensor:
    """Inverse of `encode`: [..., P, 4] offsets against [P, 4] priors -> [..., P, 4] (x1, y1, x2, y2)."""
    centre = priors_cxcywh[:, :2] + loc[..., :2] * variances[0] * priors_cxcywh[:, 2:]
    size = priors_cxcywh[:, 2:] * torch.exp(loc[..., 2:] * variances[1])
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


class BoxCoder(nn.Module):
    """The priors [P, 4] (cx, cy, w, h in [0, 1]) and the variances of the paper's eq. 2, together: the model
    owns one and hands it to the loss and the post-processor, so no one else needs to know either.
    `encode`: [..., P, 4] matched corner boxes -> offsets; `decode`: [..., P, 4] offsets -> corner boxes."""

    def __init__(self, priors_cxcywh: torch.Tensor, variances):
        super().__init__()
        self.register_buffer("priors", priors_cxcywh, persistent=False)
        self.variances = tuple(float(v) for v in variances)

    def encode(self, matched_xyxy: torch.Tensor) -> torch.Tensor:
        return encode(matched_xyxy, self.priors.to(matched_xyxy.device, torch.float32), self.variances)

    def decode(self, loc: torch.Tensor) -> torch.Tensor:
        return decode(loc, self.priors.to(loc.device, loc.dtype), self.variances)
