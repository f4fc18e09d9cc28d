import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from config import PRIORS
from layers import BoxCoder, MultiBoxLoss, PriorBox, encode, match_priors, pad_targets, xyxy_to_cxcywh


def priors_from_corners(corners):
    return xyxy_to_cxcywh(torch.tensor(corners, dtype=torch.float32))


def test_threshold_and_forced_best_prior():
    priors = priors_from_corners([[0.0, 0.0, 0.4, 0.4], [0.0, 0.0, 0.5, 0.5], [0.6, 0.6, 1.0, 1.0],
                                  [0.9, 0.0, 1.0, 0.1]])
    # gt0 = [0, 0, .5, .5]: prior1 is identical (bipartite), prior0 IoU = .16/.25 = 0.64 >= .5 -> positive.
    # gt1 = [.5, .5, 1, 1]: prior2 IoU = .16/.25 = 0.64 (its best). prior3 overlaps nothing -> background.
    gt = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]])
    boxes, labels = match_priors(gt, torch.tensor([[3, 7]]), priors, 0.5)
    assert labels.tolist() == [[4, 4, 8, 0]]
    assert torch.equal(boxes[0, 2], gt[0, 1])
    # A ground truth whose best IoU is far below the threshold still gets its best prior.
    gt_small = torch.tensor([[[0.9, 0.05, 0.95, 0.1]]])  # IoU with prior3 = .0025/.01 = 0.25
    _, labels = match_priors(gt_small, torch.tensor([[0]]), priors, 0.5)
    assert labels.tolist() == [[0, 0, 0, 1]]


def test_two_ground_truths_competing_for_one_prior():
    priors = priors_from_corners([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.5, 1.0], [0.9, 0.9, 1.0, 1.0]])
    # gtA = whole image: IoU 1 with prior0, 0.5 with prior1. gtB = [0, 0, .8, 1]: IoU .8 with prior0 (its best),
    # .625 with prior1. Bipartite step: prior0 -> gtA (IoU 1), then gtB takes its best free prior, prior1,
    # although gtA overlaps prior1 equally well at the threshold. Prior2 (IoU .01 with A) stays background.
    gt = torch.tensor([[[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.8, 1.0]]])
    _, labels = match_priors(gt, torch.tensor([[0, 1]]), priors, 0.5)
    assert labels.tolist() == [[1, 2, 0]]
    # Order of the ground truths does not matter.
    _, labels = match_priors(gt.flip(1), torch.tensor([[1, 0]]), priors, 0.5)
    assert labels.tolist() == [[1, 2, 0]]


def test_bipartite_and_best_prior_differ_where_two_objects_share_a_best_prior():
    # Unit-height strips along x (scaled by 1/100): prior0 = [0, 10], prior1 = [5, 15], prior2 = [40, 50].
    # A = [0, 10]: IoU 1 with prior0, 5/15 = .333 with prior1. B = [1, 11]: IoU 9/11 = .818 with prior0,
    # 6/14 = .429 with prior1. Both have prior0 as their best prior.
    priors = priors_from_corners([[0.0, 0.0, 0.10, 0.01], [0.05, 0.0, 0.15, 0.01], [0.40, 0.0, 0.50, 0.01]])
    a, b = [0.0, 0.0, 0.10, 0.01], [0.01, 0.0, 0.11, 0.01]
    labels_ab = torch.tensor([[0, 1]])
    # bipartite: (A, prior0) is the highest pair; B then takes prior1 (.429, below the threshold, but its own)
    _, labels = match_priors(torch.tensor([[a, b]]), labels_ab, priors, 0.5, "bipartite")
    assert labels.tolist() == [[1, 2, 0]]
    # best-prior: both claim prior0, the later (B) owns it; A keeps only priors at IoU >= .5 (none besides
    # prior0), so A has no positive; prior1's best object is B at .429 < .5: background
    _, labels = match_priors(torch.tensor([[a, b]]), labels_ab, priors, 0.5, "best-prior")
    assert labels.tolist() == [[2, 0, 0]]
    # in the other annotation order A is the later one and owns prior0
    _, labels = match_priors(torch.tensor([[b, a]]), labels_ab, priors, 0.5, "best-prior")
    assert labels.tolist() == [[2, 0, 0]]
    _, labels = match_priors(torch.tensor([[b, a]]), torch.tensor([[1, 0]]), priors, 0.5, "best-prior")
    assert labels.tolist() == [[1, 0, 0]]
    # padding rows and objects overlapping no prior claim nothing
    far = [0.8, 0.8, 0.9, 0.9]
    _, labels = match_priors(torch.tensor([[a, far, b]]), torch.tensor([[0, 2, -1]]), priors, 0.5, "best-prior")
    assert labels.tolist() == [[1, 0, 0]]


def test_matching_default_follows_the_backbone_and_resume_keeps_the_runs():
    from config_resolve import config_for, resolve
    from utils.errors import ConfigError
    assert config_for("VOC").solver.matching == "bipartite"  # the paper's VGG16, Caffe's step
    assert config_for("VOC", backbone="mobilenet_v3").solver.matching == "best-prior"
    assert config_for("VOC", backbone="resnet50").solver.matching == "best-prior"
    assert config_for("VOC", backbone="mobilenet_v3", matching="bipartite").solver.matching == "bipartite"
    ssdlite = {"backbone": "mobilenet_v3", "size": 320, "dataset": "VOC"}
    assert resolve({}, checkpoint_config=ssdlite).solver.matching == "bipartite"  # a run from before the setting
    assert resolve({}, checkpoint_config=dict(ssdlite, matching="best-prior")).solver.matching == "best-prior"
    assert resolve({"dataset": "shapes"}, checkpoint_config=ssdlite).solver.matching == "best-prior"  # a new run
    with pytest.raises(ConfigError, match="--matching must be one of bipartite, best-prior"):
        config_for("VOC", matching="best_prior")


def test_padding_rows_never_match():
    priors = priors_from_corners([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    targets = pad_targets([torch.tensor([[0.0, 0.0, 0.5, 0.5, 2.0]]), torch.zeros(0, 5)])
    assert targets.shape == (2, 1, 5) and targets[1, 0, 4] == -1
    _, labels = match_priors(targets[..., :4], targets[..., 4].long(), priors)
    assert labels.tolist() == [[3, 0], [0, 0]]


# ---- reference: a plain per-image implementation (loops), independent of the batched code ----

def iou_np(a, b):
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def reference_loss(loc, conf, priors_cxcywh, targets, thresh=0.5, neg_pos=3, matching="bipartite"):
    priors = priors_cxcywh.double().numpy()
    pri_xyxy = np.concatenate([priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2], 1)
    total_l, total_c, total_pos = 0.0, 0.0, 0
    for b, t in enumerate(targets):
        t = t.double().numpy()
        n, p = len(t), len(priors)
        ious = np.zeros((n, p))
        for i in range(n):
            bx = t[i, :4]
            x1, y1 = np.maximum(bx[0], pri_xyxy[:, 0]), np.maximum(bx[1], pri_xyxy[:, 1])
            x2, y2 = np.minimum(bx[2], pri_xyxy[:, 2]), np.minimum(bx[3], pri_xyxy[:, 3])
            inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
            ious[i] = inter / ((bx[2] - bx[0]) * (bx[3] - bx[1]) +
                               (pri_xyxy[:, 2] - pri_xyxy[:, 0]) * (pri_xyxy[:, 3] - pri_xyxy[:, 1]) - inter)
        assigned = -np.ones(p, dtype=int)
        work = ious.copy()
        for _ in range(n if matching == "bipartite" else 0):  # greedy bipartite
            i, j = np.unravel_index(np.argmax(work), work.shape)
            if work[i, j] <= 0:
                break
            assigned[j] = i
            work[i, :] = -1
            work[:, j] = -1
        for i in range(n if matching == "best-prior" else 0):  # ssd.pytorch's loop: a later object wins
            if ious[i].max() > 0:
                assigned[int(np.argmax(ious[i]))] = i
        for j in range(p):
            if assigned[j] < 0 and n and ious[:, j].max() >= thresh:
                assigned[j] = int(np.argmax(ious[:, j]))
        labels = np.array([int(t[a, 4]) + 1 if a >= 0 else 0 for a in assigned])
        logits = conf[b].double()
        ce = -torch.log_softmax(logits, -1)[torch.arange(p), torch.tensor(labels)].numpy()
        pos = labels > 0
        npos = int(pos.sum())
        for j in np.nonzero(pos)[0]:
            g = torch.tensor(t[assigned[j], :4])[None]
            target = encode(g, torch.tensor(priors[j:j + 1]), (0.1, 0.2))[0]
            total_l += F.smooth_l1_loss(loc[b, j].double(), target, reduction="sum").item()
        neg_candidates = sorted((c for c, is_pos in zip(ce, pos) if not is_pos), reverse=True)
        total_c += ce[pos].sum() + sum(neg_candidates[: min(neg_pos * npos, p - npos)])
        total_pos += npos
    return total_l / max(total_pos, 1), total_c / max(total_pos, 1)


@pytest.mark.parametrize("matching", ["bipartite", "best-prior"])
def test_loss_matches_per_image_reference_on_ssd300_priors(matching):
    torch.manual_seed(0)
    priors = PriorBox(PRIORS[("voc", 300)]).forward()
    num_classes = 21
    loc = torch.randn(4, len(priors), 4) * 0.5
    conf = torch.randn(4, len(priors), num_classes)
    targets = [
        torch.tensor([[0.1, 0.1, 0.4, 0.5, 14.0], [0.5, 0.2, 0.9, 0.9, 11.0], [0.02, 0.6, 0.1, 0.7, 4.0]]),
        torch.tensor([[0.3, 0.3, 0.7, 0.8, 0.0]]),
        torch.tensor([[0.0, 0.0, 1.0, 1.0, 19.0], [0.45, 0.45, 0.55, 0.55, 2.0]]),
        # two small objects with the same best prior: the matchings differ here
        torch.tensor([[0.103, 0.117, 0.197, 0.213, 5.0], [0.109, 0.119, 0.203, 0.215, 6.0], [0.6, 0.6, 0.9, 0.9, 7.0]]),
    ]
    criterion = MultiBoxLoss(num_classes, BoxCoder(priors, (0.1, 0.2)), overlap_thresh=0.5, neg_pos=3,
                             matching=matching)
    loss_l, loss_c = criterion((loc, conf, priors), targets).values()
    ref_l, ref_c = reference_loss(loc, conf, priors, targets, matching=matching)
    assert loss_l.item() == pytest.approx(ref_l, rel=1e-4)
    assert loss_c.item() == pytest.approx(ref_c, rel=1e-4)
    # the padded form gives the same
    padded_l, padded_c = criterion((loc, conf, priors), pad_targets(targets)).values()
    assert padded_l.item() == pytest.approx(loss_l.item()) and padded_c.item() == pytest.approx(loss_c.item())


def test_loss_with_no_positives_is_finite_and_backpropagates():
    priors = PriorBox(PRIORS[("voc", 300)]).forward()
    loc = torch.randn(2, len(priors), 4, requires_grad=True)
    conf = torch.randn(2, len(priors), 4, requires_grad=True)
    terms = MultiBoxLoss(4, BoxCoder(priors, (0.1, 0.2)))((loc, conf), [torch.zeros(0, 5), torch.zeros(0, 5)])
    assert list(terms) == ["loss_l", "loss_c"]
    loss_l, loss_c = terms.values()
    assert math.isfinite(loss_l.item()) and math.isfinite(loss_c.item())
    (loss_l + loss_c).backward()
    assert torch.isfinite(loc.grad).all() and torch.isfinite(conf.grad).all()


def test_hard_negative_count():
    # 1 positive, neg_pos 3: exactly three negatives, the ones with the highest background CE.
    priors = priors_from_corners([[0, 0, .5, .5], [.5, 0, 1, .5], [0, .5, .5, 1], [.5, .5, 1, 1],
                                  [.2, .2, .3, .3], [.7, .7, .8, .8]])
    conf = torch.zeros(1, 6, 2)
    conf[0, 1:, 1] = torch.tensor([5.0, 1.0, 4.0, 3.0, 0.0])  # background CE ranks priors 1, 3, 4 highest
    loc = torch.zeros(1, 6, 4)
    loss_c = MultiBoxLoss(2, BoxCoder(priors, (0.1, 0.2)))((loc, conf), [torch.tensor([[0, 0, .5, .5, 0.0]])])["loss_c"]
    ce = F.cross_entropy(conf[0], torch.tensor([1, 0, 0, 0, 0, 0]), reduction="none")
    assert loss_c.item() == pytest.approx((ce[0] + ce[1] + ce[3] + ce[4]).item(), rel=1e-6)
