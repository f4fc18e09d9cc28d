"""SSD's MultiBox objective (paper eq. 1) with hard negative mining, batched over images."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .box_utils import BoxCoder
from .matching import MATCHINGS, match_priors, pad_targets


class MultiBoxLoss(nn.Module):
    """`terms = criterion((loc [B,P,4], conf [B,P,C]), targets)`: {"loss_l": localisation, "loss_c": confidence},
    scalar tensors the trainer sums and logs by name; priors and variances from `box_coder` (the model's).
    ssd.pytorch's `(loc, conf, priors)` tuple is accepted too; its priors must be the coder's.

    `matching`: how each ground truth gets its own prior before the IoU threshold (layers.matching.MATCHINGS).
    `targets`: list of [n_i, 5] float tensors (x1, y1, x2, y2 in [0, 1], class 0..C-2), or the padded
    [B, N, 5] tensor of `pad_targets` (label -1 in padding rows). Smooth L1 over positives; cross-entropy over
    positives plus, per image, the `neg_pos` x positives negatives with the highest background cross-entropy;
    both summed and divided by the batch's number of positives N (a batch with N = 0 gives 0, not NaN).
    """

    def __init__(self, num_classes: int, box_coder: BoxCoder, overlap_thresh: float = 0.5, neg_pos: int = 3,
                 matching: str = "bipartite"):
        super().__init__()
        if matching not in MATCHINGS:
            raise ValueError(f"matching must be one of {', '.join(MATCHINGS)} (got {matching!r})")
        self.matching = matching
        self.num_classes = num_classes
        self.box_coder = box_coder
        self.overlap_thresh = overlap_thresh
        self.neg_pos = neg_pos

    @classmethod
    def from_config(cls, cfg, box_coder: BoxCoder) -> "MultiBoxLoss":
        return cls(cfg.model.num_classes, box_coder, cfg.solver.overlap_thresh, cfg.solver.neg_pos, cfg.solver.matching)

    def forward(self, predictions, targets):
        """predictions: (loc [B, P, 4], conf [B, P, C]), or ssd.pytorch's (loc, conf, priors), whose priors must be
        this loss's (the box coder's): matching and encoding use those."""
        if len(predictions) not in (2, 3):
            raise ValueError(f"predictions: (loc, conf) or ssd.pytorch's (loc, conf, priors), got {len(predictions)}")
        if len(predictions) == 3 and predictions[2].shape != self.box_coder.priors.shape:
            raise ValueError(f"the priors given {tuple(predictions[2].shape)} are not the box coder's "
                             f"{tuple(self.box_coder.priors.shape)}")
        loc, conf = predictions[:2]
        priors = self.box_coder.priors.to(loc.device, torch.float32)
        targets = pad_targets(targets, loc.device)
        with torch.no_grad():
            matched_boxes, labels = match_priors(targets[..., :4].float(), targets[..., 4].round().long(),
                                                 priors, self.overlap_thresh, self.matching)
            loc_targets = self.box_coder.encode(matched_boxes)
        positive = labels > 0  # [B, P]
        num_pos = positive.sum(dim=1, keepdim=True)

        loc_loss = F.smooth_l1_loss(loc.float(), loc_targets, reduction="none").sum(dim=-1)
        loss_l = (loc_loss * positive).sum()

        ce = F.cross_entropy(conf.float().flatten(0, 1), labels.flatten(), reduction="none").view_as(labels)
        with torch.no_grad():
            # Positives are ranked last (CE >= 0), so at most P - num_pos negatives can be picked.
            mining = ce.masked_fill(positive, -1.0)
            rank = mining.argsort(dim=1, descending=True).argsort(dim=1)
            num_neg = (self.neg_pos * num_pos).clamp(max=labels.shape[1] - num_pos)
            negative = rank < num_neg
        loss_c = (ce * (positive | negative)).sum()

        total_pos = num_pos.sum().clamp(min=1).float()
        return {"loss_l": loss_l / total_pos, "loss_c": loss_c / total_pos}
