"""ResNet-50 SSD300 and MobileNetV3 SSDLite320 through the same priors, loss, training, checkpoints, evaluation and
ONNX export as the VGG16 SSD."""
import os

import numpy as np
import pytest
import torch
import torchvision

import train
from config import PRIORS, table_layout
from config_resolve import config_for
from engine import export_onnx, load_model, preprocess
from layers import PriorBox
from models import WeightsError, build_model, load_backbone
from utils.checkpoint import read_state
from utils.errors import ConfigError


@pytest.mark.parametrize("backbone, size, maps, channels, per_location, total", [
    ("resnet50", 300, [38, 19, 10, 5, 3, 1], [1024, 512, 512, 256, 256, 256], [4, 6, 6, 6, 4, 4], 8732),
    ("mobilenet_v3", 320, [20, 10, 5, 3, 2, 1], [672, 960, 512, 256, 256, 128], [6] * 6, 3234),
    # SSDLite320's 3234 and 40 x 40 x 6 on the stride-8 map
    ("efficientnet_lite0", 320, [40, 20, 10, 5, 3, 2, 1], [40, 112, 1280, 512, 256, 256, 128], [6] * 7, 12834),
])
def test_feature_maps_and_prior_counts(backbone, size, maps, channels, per_location, total):
    cfg = config_for("VOC", backbone=backbone, basenet="none")
    assert cfg.model.size == size
    model = build_model(cfg).eval()
    with torch.no_grad():
        sources = model.features(torch.zeros(1, 3, size, size, dtype=torch.uint8))
        loc, conf = model(torch.zeros(2, 3, size, size, dtype=torch.uint8))
    assert [s.shape[2] for s in sources] == maps and [s.shape[1] for s in sources] == channels
    expected = sum(m * m * a for m, a in zip(maps, per_location))
    assert expected == total
    assert loc.shape == (2, expected, 4) and conf.shape == (2, expected, 21) and len(model.priors) == expected


def test_ssdlite_priors_by_hand():
    """Scales 0.2 .. 0.95 over six maps: s_k = 0.2 + 0.15 k; per location s_k, sqrt(s_k s_k+1), then for a in
    (2, 3): (s_k sqrt(a), s_k / sqrt(a)) and its transpose; centres (j + 0.5) / f."""
    priors = PriorBox(PRIORS[("ssdlite", 320)]).forward()
    s0, s1 = 0.2, 0.35
    expected = [[0.025, 0.025, s0, s0], [0.025, 0.025, (s0 * s1) ** 0.5, (s0 * s1) ** 0.5],
                [0.025, 0.025, s0 * 2 ** 0.5, s0 / 2 ** 0.5], [0.025, 0.025, s0 / 2 ** 0.5, s0 * 2 ** 0.5],
                [0.025, 0.025, s0 * 3 ** 0.5, s0 / 3 ** 0.5], [0.025, 0.025, s0 / 3 ** 0.5, s0 * 3 ** 0.5]]
    assert torch.allclose(priors[:6], torch.tensor(expected), atol=1e-6)
    last = priors[-6:]  # the 1x1 map: centre 0.5, s = 0.95, the extra square sqrt(0.95 x 1.0)
    assert last[0].tolist() == pytest.approx([0.5, 0.5, 0.95, 0.95], abs=1e-6)
    assert last[1, 2].item() == pytest.approx(0.95 ** 0.5, abs=1e-6)


def test_size_and_weights_errors():
    with pytest.raises(ConfigError, match="--size 512: the resnet50 backbone is built for --size 300"):
        config_for("VOC", backbone="resnet50", size=512)
    assert config_for("VOC", backbone="mobilenet_v3").solver.basenet == "MobileNet_V3_Large_Weights.IMAGENET1K_V1"
    model = build_model(config_for("VOC", backbone="resnet50", basenet="none"))
    with pytest.raises(WeightsError, match="neither a file nor a torchvision weights name"):
        load_backbone(model, "ResNet51_Weights.FOO")


@pytest.mark.parametrize("backbone, reference, trunk", [
    ("resnet50", torchvision.models.resnet50, lambda m: m.trunk[6][5].conv3.weight),
    ("mobilenet_v3", torchvision.models.mobilenet_v3_large, lambda m: m.stage5[-1][0].weight),
])
def test_torchvision_imagenet_state_dicts_load_into_the_backbone(tmp_path, backbone, reference, trunk):
    torch.manual_seed(1)
    state = reference(weights=None).state_dict()
    torch.save(state, tmp_path / "imagenet.pth")
    model = build_model(config_for("VOC", backbone=backbone, basenet="none"))
    assert load_backbone(model, str(tmp_path / "imagenet.pth")) == "torchvision"
    key = "layer3.5.conv3.weight" if backbone == "resnet50" else "features.16.0.weight"
    assert torch.equal(trunk(model), state[key])


@pytest.mark.parametrize("backbone", ["resnet50", "mobilenet_v3", "efficientnet_lite0"])
def test_train_checkpoint_eval_and_onnx(tmp_path, backbone):
    ort = pytest.importorskip("onnxruntime")
    run = tmp_path / "run"
    assert train.main(["--backbone", backbone, "--max-iter", "2", "--batch-size", "2", "--workers", "0",
                       "--shapes-train-images", "4", "--shapes-test-images", "2", "--no-tensorboard",
                       "--checkpoint-every", "0", "--log-every", "1", "--output", str(run)]) == 0
    saved = read_state(str(run / "final.pth"))
    assert saved["config"]["backbone"] == backbone and (run / "eval" / "metrics.json").exists()
    assert (run / "eval" / "pr_curves.png").exists() and (run / "eval" / "ap_table.png").exists()  # as eval.py
    model, cfg = load_model(str(run / "final.pth"))
    assert cfg.model.backbone == backbone and cfg.model.pixel_format == "torchvision"
    reference = build_model(cfg).eval()
    reference.load_state_dict(saved["model"])
    image = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    batch, _ = preprocess([image], cfg.model.size)
    with torch.no_grad():
        loc, conf = model(batch)
        assert all(torch.equal(a, b) for a, b in zip((loc, conf), reference(batch)))
    export_onnx(model, cfg, str(tmp_path / "m.onnx"), nms=False)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    boxes, scores = session.run(None, {"images": batch.contiguous().numpy()})
    assert np.allclose(boxes, model.box_coder.decode(loc).numpy(), atol=1e-4)
    assert np.allclose(scores, torch.softmax(conf, -1).numpy(), atol=1e-4)
    assert os.path.getsize(tmp_path / "m.onnx") > 1e6


def test_an_efficientnet_checkpoint_with_ssdlite320s_six_maps_builds_without_the_stride8_map():
    """The detector before its stride-8 map carried SSDLite320's layout: a config with that layout (as its
    checkpoints store it) builds the six-map network, with the same parameter names."""
    seven = config_for("VOC", backbone="efficientnet_lite0", basenet="none")
    six = seven.replace(prior_layout=table_layout(("ssdlite", 320)))
    model = build_model(six).eval()
    with torch.no_grad():
        assert [s.shape[2] for s in model.features(torch.zeros(1, 3, 320, 320, dtype=torch.uint8))] == \
            [20, 10, 5, 3, 2, 1]
    assert len(model.priors) == 3234
    assert set(build_model(seven).state_dict()) - set(model.state_dict()) == \
        {k for k in build_model(seven).state_dict() if k.startswith(("loc.6", "conf.6"))}
