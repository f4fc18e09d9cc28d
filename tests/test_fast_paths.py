"""Fast paths must not change results: channels-last, the fixed-round NMS of the CUDA graph with its exact
fallback, the graph itself and torch.compile give the same outputs, losses and detections."""
import pytest
import torch
from helpers import assert_same_detections

from engine import Detector
from layers import MultiBoxLoss, PostProcessor
from models import VGGSSD
from utils.errors import ConfigError

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_channels_last_matches_contiguous_on_ssd300():
    torch.manual_seed(0)
    model = VGGSSD(300, 6).eval()
    images = torch.randint(0, 255, (2, 3, 300, 300), dtype=torch.uint8)
    with torch.no_grad():
        loc, conf = model(images)
        fast = VGGSSD(300, 6).eval()
        fast.load_state_dict(model.state_dict())
        fast = fast.to(memory_format=torch.channels_last)
        loc_cl, conf_cl = fast(images.contiguous(memory_format=torch.channels_last))
    # float32 sums in another order: differences ~1e-5 of the outputs' magnitude (untrained logits reach ~50)
    scale = max(loc.abs().max(), conf.abs().max())
    assert (loc - loc_cl).abs().max() < 2e-5 * scale and (conf - conf_cl).abs().max() < 2e-5 * scale
    targets = [torch.tensor([[0.1, 0.1, 0.5, 0.6, 2.0]]), torch.tensor([[0.3, 0.2, 0.9, 0.8, 4.0]])]
    criterion = MultiBoxLoss(6, model.box_coder)
    plain = criterion((loc, conf, model.priors), targets)
    channels_last = criterion((loc_cl, conf_cl, model.priors), targets)
    assert all(torch.allclose(plain[k], channels_last[k], rtol=1e-4) for k in plain)
    post = PostProcessor(model.box_coder, top_k=20)
    a = Detector(model, post)(images)
    b = Detector(fast, post, channels_last=True)(images)
    assert_same_detections(a, b)


def bf16_agreement(device: str, autocast_network: bool):
    """Losses of an SSD300 whose network ran (or whose outputs were rounded) in bf16, against fp32."""
    torch.manual_seed(0)
    model = VGGSSD(300, 6, batch_norm=True, pixel_format="torchvision").to(device).eval()
    images = torch.randint(0, 255, (1, 3, 300, 300), dtype=torch.uint8, device=device)
    targets = [torch.tensor([[0.1, 0.1, 0.5, 0.6, 2.0], [0.55, 0.3, 0.95, 0.9, 4.0]], device=device)]
    criterion = MultiBoxLoss(6, model.box_coder)
    with torch.no_grad():
        loc, conf = model(images)
        if autocast_network:
            with torch.autocast(device, dtype=torch.bfloat16):
                loc16, conf16 = model(images)
        else:  # CPUs without bf16 convolutions take minutes for one autocast forward: round the outputs instead
            loc16, conf16 = loc.bfloat16(), conf.bfloat16()
        assert loc16.dtype == torch.bfloat16
        plain = criterion((loc, conf, model.priors), targets)
        fast = criterion((loc16, conf16, model.priors), targets)
    # bf16 keeps 8 bits of mantissa: the summed losses agree to about 1%
    assert all(torch.allclose(plain[k], fast[k], rtol=0.03) for k in plain), (plain, fast)


def test_loss_takes_bf16_network_outputs():
    bf16_agreement("cpu", autocast_network=False)


@cuda
def test_bf16_autocast_loss_matches_fp32_on_cuda():
    bf16_agreement("cuda", autocast_network=True)


def test_fixed_nms_rounds_fall_back_to_the_exact_detections():
    torch.manual_seed(0)
    model = VGGSSD(300, 4).eval()
    images = torch.randint(0, 255, (2, 3, 300, 300), dtype=torch.uint8)
    sizes = torch.tensor([[375, 500], [300, 300]])
    post = PostProcessor(model.box_coder, top_k=50)
    exact = Detector(model, post, timing=True)
    expected = exact(images, sizes)
    assert set(exact.seconds) == {"network", "postprocess"} and exact.fallbacks == 0
    one_round = Detector(model, post, nms_rounds=1)  # untrained weights: one round never reaches the fixed point
    assert_same_detections(expected, one_round(images, sizes), box_atol=0, score_atol=0)
    assert one_round.fallbacks == 1
    enough = Detector(model, post, nms_rounds=400)  # K rounds always converge: no fallback, same result
    assert_same_detections(expected, enough(images, sizes), box_atol=0, score_atol=0)
    assert enough.fallbacks == 0
    assert expected[0]["boxes"].max() > 1.5  # pixels of the 500x375 original


def test_cuda_graph_needs_a_cuda_device():
    model = VGGSSD(300, 4)
    with pytest.raises(ConfigError, match="CUDA graphs need the model on a CUDA device"):
        Detector(model, cuda_graph=True)


@cuda
@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_cuda_graph_replay_matches_eager(amp):
    torch.manual_seed(0)
    model = VGGSSD(300, 21).cuda().eval().to(memory_format=torch.channels_last)
    post = PostProcessor(model.box_coder)
    eager = Detector(model, post, amp, channels_last=True)
    graphed = Detector(model, post, amp, channels_last=True, cuda_graph=True)
    for batch in (4, 1, 4):  # a new shape captures a second graph; the third call replays the first
        images = torch.randint(0, 255, (batch, 3, 300, 300), dtype=torch.uint8, device="cuda")
        tolerance = 1e-3 if amp == "bf16" else 1e-4
        assert_same_detections(eager(images), graphed(images), box_atol=tolerance, score_atol=tolerance)
    assert len(graphed.graphs) == 2


@cuda
def test_compiled_network_matches_eager():
    torch.manual_seed(0)
    model = VGGSSD(300, 21).cuda().eval()
    images = torch.randint(0, 255, (2, 3, 300, 300), dtype=torch.uint8, device="cuda")
    post = PostProcessor(model.box_coder)
    assert_same_detections(Detector(model, post)(images), Detector(model, post, compile=True)(images),
                           box_atol=1e-3, score_atol=1e-3)
