"""Fast paths must not change results: channels-last gives the same outputs, losses and detections."""
import torch

from layers import MultiBoxLoss, PostProcessor
from models import build_ssd
from utils.evaluation import detect


def test_channels_last_matches_contiguous_on_ssd300():
    torch.manual_seed(0)
    model = build_ssd(300, 6).eval()
    images = torch.randint(0, 255, (2, 3, 300, 300), dtype=torch.uint8)
    with torch.no_grad():
        loc, conf = model(images)
        fast = build_ssd(300, 6).eval()
        fast.load_state_dict(model.state_dict())
        fast = fast.to(memory_format=torch.channels_last)
        loc_cl, conf_cl = fast(images.contiguous(memory_format=torch.channels_last))
    # float32 sums in another order: differences ~1e-5 of the outputs' magnitude (untrained logits reach ~50)
    scale = max(loc.abs().max(), conf.abs().max())
    assert (loc - loc_cl).abs().max() < 2e-5 * scale and (conf - conf_cl).abs().max() < 2e-5 * scale
    targets = [torch.tensor([[0.1, 0.1, 0.5, 0.6, 2.0]]), torch.tensor([[0.3, 0.2, 0.9, 0.8, 4.0]])]
    criterion = MultiBoxLoss(6)
    plain = criterion((loc, conf, model.priors), targets)
    channels_last = criterion((loc_cl, conf_cl, model.priors), targets)
    assert all(torch.allclose(a, b, rtol=1e-4) for a, b in zip(plain, channels_last))
    post = PostProcessor(top_k=20)
    a = detect(model, images, post)
    b = detect(fast, images, post, channels_last=True)
    for da, db in zip(a, b):
        assert torch.equal(da["labels"], db["labels"])
        assert torch.allclose(da["scores"], db["scores"], atol=1e-4)
        assert torch.allclose(da["boxes"], db["boxes"], atol=1e-4)
