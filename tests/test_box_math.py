import math

import pytest
import torch

from config import PRIORS
from config_resolve import config_for
from layers import BoxCoder, PriorBox, cxcywh_to_xyxy, decode, encode, pairwise_box_iou, xyxy_to_cxcywh
from utils.errors import ConfigError


def test_prior_counts():
    assert PriorBox(PRIORS[("voc", 300)]).forward().shape == (8732, 4)
    assert PriorBox(PRIORS[("coco", 300)]).forward().shape == (8732, 4)
    assert PriorBox(PRIORS[("voc", 512)]).forward().shape == (24564, 4)
    assert PriorBox(PRIORS[("coco", 512)]).forward().shape == (24564, 4)


def test_hand_computed_priors_ssd300():
    p = PriorBox(PRIORS[("voc", 300)]).forward()
    assert p.dtype == torch.float32
    c0 = 0.5 / 37.5  # first cell centre of the 38x38 map (step 8)
    r2 = math.sqrt(2)
    expected_first_cell = [
        [c0, c0, 0.1, 0.1],                       # s_k = 30/300
        [c0, c0, math.sqrt(0.1 * 0.2), math.sqrt(0.1 * 0.2)],  # sqrt(s_k * s_k+1), s_k+1 = 60/300
        [c0, c0, 0.1 * r2, 0.1 / r2],             # ar 2
        [c0, c0, 0.1 / r2, 0.1 * r2],             # ar 1/2
    ]
    assert torch.allclose(p[:4], torch.tensor(expected_first_cell), atol=1e-6)
    # next cell is to the right (row-major): cx = 1.5 / 37.5
    assert torch.allclose(p[4], torch.tensor([1.5 / 37.5, c0, 0.1, 0.1]), atol=1e-6)
    # second map (19x19, step 16, 6 boxes) starts at 38*38*4; its ar 3 box: s_k*sqrt3 x s_k/sqrt3, s_k = 0.2
    start = 38 * 38 * 4
    c1 = 0.5 / (300 / 16)
    assert torch.allclose(p[start + 4], torch.tensor([c1, c1, 0.2 * math.sqrt(3), 0.2 / math.sqrt(3)]), atol=1e-6)
    # the last map is 1x1 with s_k = 264/300: its last box is ar 1/2 and gets clipped to 1 in height
    assert torch.allclose(p[-1], torch.tensor([0.5, 0.5, 0.88 / r2, 1.0]), atol=1e-6)
    assert torch.allclose(p[-3], torch.tensor([0.5, 0.5, math.sqrt(0.88 * 1.05), math.sqrt(0.88 * 1.05)]), atol=1e-6)
    assert p.min() >= 0 and p.max() <= 1


def test_min_sizes_flag_replaces_the_layouts_sizes():
    """--min-sizes: s_k = size / 320 per map, the extra square prior sqrt(s_k s_k+1), the last one reaching to the
    layout's largest size (320 for SSDLite320); the count of priors is the layout's."""
    sizes = (32, 86.4, 140.8, 195.2, 249.6, 304)
    cfg = config_for("VOC", backbone="mobilenet_v3", min_sizes=sizes)
    p = PriorBox(cfg.model.prior_layout).forward()
    assert p.shape == PriorBox(PRIORS[("ssdlite", 320)]).forward().shape == (3234, 4)
    c0 = 0.5 / 20  # first cell of the 20x20 map (step 16)
    r3 = math.sqrt(3)
    assert torch.allclose(p[:6], torch.tensor([
        [c0, c0, 0.1, 0.1], [c0, c0, math.sqrt(0.1 * 0.27), math.sqrt(0.1 * 0.27)],
        [c0, c0, 0.1 * math.sqrt(2), 0.1 / math.sqrt(2)], [c0, c0, 0.1 / math.sqrt(2), 0.1 * math.sqrt(2)],
        [c0, c0, 0.1 * r3, 0.1 / r3], [c0, c0, 0.1 / r3, 0.1 * r3]]), atol=1e-6)
    assert torch.allclose(p[-5], torch.tensor([0.5, 0.5, math.sqrt(0.95 * 1.0), math.sqrt(0.95 * 1.0)]), atol=1e-6)


@pytest.mark.parametrize("sizes", [(32, 64, 112), (64, 32, 112, 160, 208, 256), (64, 112, 160, 208, 256, 330)])
def test_min_sizes_errors_name_the_flag(sizes):  # too few, not increasing, beyond the largest prior (320)
    with pytest.raises(ConfigError, match="^--min-sizes: give 6 prior sizes in pixels, one per feature map of the "
                                          "mobilenet_v3 320 layout, increasing and below 320 .*the layout's: 64 112"):
        config_for("VOC", backbone="mobilenet_v3", min_sizes=sizes)


def test_priors_ssd512_last_map():
    p = PriorBox(PRIORS[("voc", 512)]).forward()
    # the 1x1 map: s_k = 460.8/512 = 0.9, s_k' = sqrt(0.9 * 537.6/512)
    assert torch.allclose(p[-4], torch.tensor([0.5, 0.5, 0.9, 0.9]), atol=1e-6)
    assert torch.allclose(p[-3, 2], torch.tensor(math.sqrt(0.9 * 1.05)), atol=1e-6)


def test_corner_centre_conversion():
    xyxy = torch.tensor([[0.1, 0.2, 0.5, 0.8]])
    cxcywh = xyxy_to_cxcywh(xyxy)
    assert torch.allclose(cxcywh, torch.tensor([[0.3, 0.5, 0.4, 0.6]]))
    assert torch.allclose(cxcywh_to_xyxy(cxcywh), xyxy)


def test_iou_hand_cases():
    boxes = torch.tensor([[[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]]])  # a box and a padding row
    priors = torch.tensor([[1.0, 1.0, 3.0, 3.0],   # overlap 1, union 7
                           [0.0, 0.0, 2.0, 2.0],   # identical
                           [5.0, 5.0, 6.0, 6.0],   # disjoint
                           [0.0, 0.0, 1.0, 2.0]])  # inside: 2 / 4
    iou = pairwise_box_iou(boxes, priors[None])
    assert iou.shape == (1, 2, 4)
    assert torch.allclose(iou[0, 0], torch.tensor([1 / 7, 1.0, 0.0, 0.5]))
    assert torch.all(iou[0, 1] == 0)


def test_encode_hand_case_and_round_trip():
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    box = torch.tensor([[0.45, 0.35, 0.65, 0.75]])  # centre (0.55, 0.55), size (0.2, 0.4)
    offsets = encode(box, priors, (0.1, 0.2))
    assert torch.allclose(offsets, torch.tensor([[0.05 / (0.1 * 0.2), 0.05 / (0.1 * 0.4), 0.0, 0.0]]), atol=1e-5)
    torch.manual_seed(0)
    priors = torch.rand(50, 4) * 0.5 + torch.tensor([0.25, 0.25, 0.05, 0.05])  # (cx, cy, w, h)
    boxes = cxcywh_to_xyxy(torch.rand(3, 50, 4) * 0.5 + 0.1)
    coder = BoxCoder(priors, (0.1, 0.2))
    assert torch.allclose(coder.decode(coder.encode(boxes)), boxes, atol=1e-5)
    assert torch.allclose(decode(encode(boxes, priors, (0.2, 0.5)), priors, (0.2, 0.5)), boxes, atol=1e-5)


@pytest.mark.parametrize("variances", [(0.1, 0.2)])
def test_decode_zero_offsets_is_prior(variances):
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    assert torch.allclose(decode(torch.zeros(2, 1, 4), priors, variances), torch.tensor([[[0.4, 0.3, 0.6, 0.7]]]))
