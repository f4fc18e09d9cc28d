import math

import pytest
import torch
from torchvision.ops import nms

from config_resolve import config_for
from layers import (
    BoxCoder,
    PostProcessor,
    PriorBox,
    greedy_nms,
    postprocess,
    postprocess_padded,
    soft_nms,
    xyxy_to_cxcywh,
)

VARIANCES = (0.1, 0.2)


def log_probs(rows):
    """Logits whose softmax is exactly the given probabilities."""
    return torch.log(torch.tensor(rows, dtype=torch.float32))


def test_nms_suppresses_within_a_class_and_keeps_the_same_box_for_two_classes():
    priors = xyxy_to_cxcywh(torch.tensor([[0.1, 0.1, 0.5, 0.5],     # A
                                          [0.12, 0.1, 0.52, 0.5],   # B, IoU(A, B) = 0.38/0.42 > 0.45
                                          [0.6, 0.6, 0.9, 0.9],     # C, far away
                                          [0.0, 0.0, 0.05, 0.05]]))  # D, low scores everywhere
    # classes: background, cat(0), dog(1)
    conf = log_probs([[[0.05, 0.55, 0.40],
                       [0.20, 0.50, 0.30],
                       [0.30, 0.70, 1e-6],
                       [0.99, 0.005, 0.005]]])
    loc = torch.zeros(1, 4, 4)  # boxes = priors
    (det,) = postprocess(loc, conf, BoxCoder(priors, VARIANCES), score_thresh=0.01, nms_thresh=0.45, top_k=200)
    got = sorted(zip(det["labels"].tolist(), [round(s, 4) for s in det["scores"].tolist()]))
    # cat: A (0.55) suppresses B (0.50); C (0.70) kept; D (0.005) below threshold.
    # dog: A (0.40) suppresses B (0.30); C below threshold.
    assert got == [(0, 0.55), (0, 0.7), (1, 0.4)]
    assert torch.allclose(det["boxes"][det["scores"].argmax()], torch.tensor([0.6, 0.6, 0.9, 0.9]), atol=1e-6)
    assert det["scores"].tolist() == sorted(det["scores"].tolist(), reverse=True)


@pytest.mark.parametrize("nms", ["hard", "soft"])
def test_top_k_per_image_and_batching(nms):
    torch.manual_seed(0)
    priors = torch.rand(300, 4) * torch.tensor([1, 1, 0.1, 0.1]) + torch.tensor([0, 0, 0.02, 0.02])
    conf = torch.randn(3, 300, 5) * 3
    loc = torch.zeros(3, 300, 4)
    batched = postprocess(loc, conf, BoxCoder(priors, VARIANCES), top_k=7, nms=nms)
    assert len(batched) == 3
    for b in range(3):
        single = postprocess(loc[b:b + 1], conf[b:b + 1], BoxCoder(priors, VARIANCES), top_k=7, nms=nms)[0]
        assert len(batched[b]["scores"]) == 7
        assert torch.allclose(batched[b]["scores"], single["scores"])
        assert torch.equal(batched[b]["labels"], single["labels"])


def test_empty_image():
    priors = xyxy_to_cxcywh(torch.tensor([[0.1, 0.1, 0.5, 0.5]]))
    conf = log_probs([[[0.999, 0.0005, 0.0005]]])
    (det,) = PostProcessor(BoxCoder(priors, VARIANCES))(torch.zeros(1, 1, 4), conf)
    assert det["boxes"].shape == (0, 4) and det["scores"].shape == (0,)


def test_soft_nms_rescoring_follows_the_paper():
    boxes = torch.tensor([[[0.0, 0.0, 1.0, 1.0], [0.5, 0.0, 1.5, 1.0], [3.0, 3.0, 4.0, 4.0]]])
    scores = torch.tensor([[0.9, 0.8, 0.7]])
    iou = 0.5 / 1.5
    kept, index = soft_nms(boxes, scores, 3, "gaussian", sigma=0.5, score_thresh=0.01)
    assert index.tolist() == [[0, 2, 1]]
    assert kept[0].tolist() == pytest.approx([0.9, 0.7, 0.8 * math.exp(-iou ** 2 / 0.5)], rel=1e-5)
    kept, index = soft_nms(boxes, scores, 3, "linear", iou_thresh=0.3, score_thresh=0.01)
    assert index.tolist() == [[0, 2, 1]]
    assert kept[0].tolist() == pytest.approx([0.9, 0.7, 0.8 * (1 - iou)], rel=1e-5)
    # below the linear threshold nothing changes
    kept, _ = soft_nms(boxes, scores, 3, "linear", iou_thresh=0.5, score_thresh=0.01)
    assert sorted(kept[0].tolist(), reverse=True) == pytest.approx([0.9, 0.8, 0.7])


def test_soft_nms_through_postprocess():
    priors = xyxy_to_cxcywh(torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.52, 0.5]]))
    conf = log_probs([[[0.05, 0.95], [0.2, 0.8]]])
    (det,) = postprocess(torch.zeros(1, 2, 4), conf, BoxCoder(priors, VARIANCES), nms="soft", soft_nms_method="linear",
                         nms_thresh=0.3)
    iou = (0.38 * 0.4) / (2 * 0.16 - 0.38 * 0.4)
    assert det["scores"].tolist() == pytest.approx([0.95, 0.8 * (1 - iou)], rel=1e-4)


def clustered_boxes(generator, groups, k):
    """Score-sorted groups of boxes around a few centres, so that NMS has long suppression chains."""
    centres = torch.rand(groups, 3, 2, generator=generator)
    pick = torch.randint(0, 3, (groups, k), generator=generator)
    xy = centres.gather(1, pick[..., None].expand(-1, -1, 2)) + torch.randn(groups, k, 2, generator=generator) * 0.03
    wh = torch.rand(groups, k, 2, generator=generator) * 0.2 + 0.05
    scores = torch.rand(groups, k, generator=generator).sort(dim=1, descending=True).values
    return torch.cat([xy, xy + wh], dim=-1), scores


@pytest.mark.parametrize("iterations", [None, 60])
def test_greedy_nms_keeps_what_torchvision_nms_keeps(iterations):
    generator = torch.Generator().manual_seed(0)
    boxes, scores = clustered_boxes(generator, 30, 120)
    valid = scores >= 0.2
    keep, converged = greedy_nms(boxes, valid, 0.45, iterations, chunk_elements=7 * 120 * 120)  # 5 chunks
    assert bool(converged)
    for g in range(30):
        expected = nms(boxes[g][valid[g]], scores[g][valid[g]], 0.45)
        assert keep[g].nonzero().flatten().tolist() == sorted(expected.tolist())


def test_greedy_nms_with_too_few_rounds_says_so():
    # A suppresses B, B would suppress C; C survives because B is gone: three rounds to be sure of it
    boxes = torch.tensor([[[0.0, 0, 1, 1], [0.3, 0, 1.3, 1], [0.6, 0, 1.6, 1]]])
    valid = torch.ones(1, 3, dtype=torch.bool)
    keep, converged = greedy_nms(boxes, valid, 0.45, nms_rounds=1)
    assert keep.tolist() == [[True, False, False]] and not converged
    keep, converged = greedy_nms(boxes, valid, 0.45, nms_rounds=3)
    assert keep.tolist() == [[True, False, True]] and converged
    assert greedy_nms(boxes, valid, 0.45)[0].tolist() == [[True, False, True]]


def reference_postprocess(loc, conf, priors, score_thresh=0.01, nms_thresh=0.45, top_k=200, pre_nms_top_k=400):
    """The recipe written out image by image and class by class with torchvision's nms."""
    out = []
    for b in range(loc.shape[0]):
        centre = priors[:, :2] + loc[b, :, :2] * 0.1 * priors[:, 2:]
        size = priors[:, 2:] * torch.exp(loc[b, :, 2:] * 0.2)
        boxes = torch.cat([centre - size / 2, centre + size / 2], 1).clamp(0, 1)  # Caffe clips decoded boxes
        probs = torch.softmax(conf[b], dim=-1)
        found = []
        for c in range(1, conf.shape[2]):
            scores, index = probs[:, c].topk(pre_nms_top_k)
            mask = scores >= score_thresh
            kept = nms(boxes[index][mask], scores[mask], nms_thresh)
            found += [(float(s), c - 1) for s in scores[mask][kept]]
        out.append(sorted(found, reverse=True)[:top_k])
    return out


def test_postprocess_matches_per_class_torchvision_nms_at_ssd300_shapes():
    generator = torch.Generator().manual_seed(1)
    priors = PriorBox(config_for("VOC").model.prior_layout)()
    loc = torch.randn(2, len(priors), 4, generator=generator) * 0.5
    conf = torch.randn(2, len(priors), 21, generator=generator) * 2
    detections = postprocess(loc, conf, BoxCoder(priors, VARIANCES))
    for det, expected in zip(detections, reference_postprocess(loc, conf, priors)):
        got = sorted(zip(det["scores"].tolist(), det["labels"].tolist()), reverse=True)  # exact ties: by label
        assert len(got) == len(expected) == 200
        assert [label for _, label in got] == [label for _, label in expected]
        assert [s for s, _ in got] == pytest.approx([s for s, _ in expected], abs=1e-7)
    boxes, scores, labels, counts, converged = postprocess_padded(loc, conf, BoxCoder(priors, VARIANCES), nms_rounds=50)
    assert bool(converged) and counts.tolist() == [200, 200]
    assert torch.equal(scores[0], detections[0]["scores"]) and torch.equal(labels[1], detections[1]["labels"])


def test_cpu_sorted_nms_equals_the_fixed_shape_nms():
    from layers.postprocessing import sorted_greedy_nms
    generator = torch.Generator().manual_seed(3)
    # random groups, crafted ties, identical and zero-area boxes, a group of 1 and one of the maximum size
    corners = torch.rand(6, 37, 2, generator=generator) * 0.6
    boxes = torch.cat([corners, corners + torch.rand(6, 37, 2, generator=generator) * 0.4], -1)
    boxes[1, 5:9] = boxes[1, 4]  # identical boxes
    boxes[2, 3:6, 2:] = boxes[2, 3:6, :2]  # zero-area
    valid = torch.rand(6, 37, generator=generator) > 0.2
    valid[3] = False
    valid[3, 0] = True  # a group of one
    valid[4] = True
    for thresh in (0.3, 0.45, 0.7):
        expected, _ = greedy_nms(boxes, valid, thresh)
        assert torch.equal(sorted_greedy_nms(boxes, valid, thresh), expected)


def test_cpu_postprocess_equals_the_fixed_shape_path_on_network_outputs():
    from models import VGGSSD
    torch.manual_seed(0)
    model = VGGSSD(300, 21).eval()
    with torch.no_grad():
        loc, conf = model(torch.randint(0, 255, (2, 3, 300, 300), dtype=torch.uint8))
    cpu = postprocess_padded(loc, conf, model.box_coder)  # sorted greedy NMS on a CPU
    fixed = postprocess_padded(loc, conf, model.box_coder, nms_rounds=400)  # the CUDA path, run to the fixed point
    assert bool(fixed.converged)
    assert torch.equal(cpu.counts, fixed.counts) and torch.equal(cpu.labels, fixed.labels)
    assert torch.equal(cpu.scores, fixed.scores) and torch.equal(cpu.boxes, fixed.boxes)
