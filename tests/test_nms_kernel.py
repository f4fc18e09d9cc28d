"""The Triton suppression-mask kernel against the eager reference: compiled on a CUDA machine (where
`layers.suppression_bits` dispatches to it), run by Triton's interpreter on a CPU."""
import pytest
import torch

pytest.importorskip("triton")  # without CUDA, conftest.py has chosen Triton's interpreter
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

from layers.nms_kernel import suppression_bits_triton  # noqa: E402
from layers.postprocessing import greedy_nms, suppression_bits, suppression_bits_eager  # noqa: E402
from models import VGGSSD  # noqa: E402


def random_boxes(groups, k, seed=0):
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(groups, k, 2, generator=generator) * 0.7
    return torch.cat([corners, corners + torch.rand(groups, k, 2, generator=generator) * 0.3], -1)


@pytest.mark.parametrize("groups, k", [(1, 8), (3, 24), (2, 40), (1, 200), (1, 400)])
def test_kernel_equals_eager_on_random_boxes(groups, k):
    boxes = random_boxes(groups, k, seed=k)
    for thresh in (0.3, 0.45, 0.7):
        expected = suppression_bits_eager(boxes, thresh)
        assert torch.equal(suppression_bits_triton(boxes.to(DEVICE), thresh).cpu(), expected)


def test_kernel_equals_eager_on_crafted_boxes():
    boxes = random_boxes(4, 40, seed=1)
    boxes[0, 10:20] = boxes[0, 9]  # identical boxes: IoU exactly 1
    boxes[1, :, 2:] = boxes[1, :, :2]  # zero-area boxes: IoU 0/0 suppresses nothing
    boxes[2, 1] = boxes[2, 0] + torch.tensor([0.0, 0.0, 1e-7, 0.0])  # IoU a hair under 1
    boxes[3] = 0  # padding rows, as greedy_nms adds them
    for thresh in (0.45, 1.0):
        expected = suppression_bits_eager(boxes, thresh)
        assert torch.equal(suppression_bits_triton(boxes.to(DEVICE), thresh).cpu(), expected)
    with pytest.raises(ValueError, match="multiple of 8"):
        suppression_bits_triton(boxes[:, :37], 0.45)


def test_kernel_in_greedy_nms_on_ssd300_outputs(monkeypatch):
    torch.manual_seed(0)
    model = VGGSSD(300, 5).eval()
    with torch.no_grad():
        loc, conf = model(torch.randint(0, 255, (1, 3, 300, 300), dtype=torch.uint8))
        boxes = model.box_coder.decode(loc).clamp(0, 1)
        scores, index = conf.softmax(-1)[0, :, 1:].T.topk(400, dim=1)  # [4 classes, 400] sorted candidates
    candidates = boxes[0][index]  # [4, 400, 4]
    expected, _ = greedy_nms(candidates, scores >= 0.01, 0.45)
    monkeypatch.setattr("layers.postprocessing.suppression_bits_eager", suppression_bits_triton)
    kept, converged = greedy_nms(candidates, scores >= 0.01, 0.45)
    assert bool(converged) and torch.equal(kept, expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_dispatches_to_the_kernel():
    boxes = random_boxes(64, 400, seed=7)
    assert torch.equal(suppression_bits(boxes.cuda(), 0.45).cpu(), suppression_bits_eager(boxes, 0.45))
