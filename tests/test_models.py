import argparse
import hashlib
import os

import pytest
import torch
import torchvision

from models import VGGSSD, WeightsError, load_basenet, load_ssd_weights
from models.weights import KNOWN_FILES

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")

# ssd.pytorch's VGG ModuleList: parameters at these indices (conv1_1 .. conv5_3, fc6 = 31, fc7 = 33).
SSD_PYTORCH_VGG_CONVS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28, 31, 33]
VGG_SHAPES = [(64, 3), (64, 64), (128, 64), (128, 128), (256, 128), (256, 256), (256, 256), (512, 256),
              (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]


def ssd_pytorch_vgg_state():
    """A state dict with the keys and shapes of ssd.pytorch's vgg16_reducedfc.pth."""
    g = torch.Generator().manual_seed(0)
    state = {}
    for index, (out_ch, in_ch) in zip(SSD_PYTORCH_VGG_CONVS, VGG_SHAPES):
        state[f"{index}.weight"] = torch.randn(out_ch, in_ch, 3, 3, generator=g) * 0.01
        state[f"{index}.bias"] = torch.randn(out_ch, generator=g)
    state["31.weight"], state["31.bias"] = torch.randn(1024, 512, 3, 3, generator=g) * 0.01, torch.randn(1024)
    state["33.weight"], state["33.bias"] = torch.randn(1024, 1024, 1, 1, generator=g) * 0.01, torch.randn(1024)
    return state


def ssd_pytorch_ssd300_state(num_classes=21):
    """Keys and shapes of ssd.pytorch's SSD300 checkpoint (e.g. ssd300_mAP_77.43_v2.pth), written out by hand."""
    g = torch.Generator().manual_seed(1)
    state = {f"vgg.{k}": v for k, v in ssd_pytorch_vgg_state().items()}
    state["L2Norm.weight"] = torch.rand(512, generator=g) * 20
    extras = [(256, 1024, 1), (512, 256, 3), (128, 512, 1), (256, 128, 3), (128, 256, 1), (256, 128, 3),
              (128, 256, 1), (256, 128, 3)]
    for i, (o, c, k) in enumerate(extras):
        state[f"extras.{i}.weight"] = torch.randn(o, c, k, k, generator=g) * 0.05
        state[f"extras.{i}.bias"] = torch.randn(o, generator=g) * 0.05
    for i, (c, a) in enumerate(zip([512, 1024, 512, 256, 256, 256], [4, 6, 6, 6, 4, 4])):
        state[f"loc.{i}.weight"] = torch.randn(a * 4, c, 3, 3, generator=g) * 0.01
        state[f"loc.{i}.bias"] = torch.randn(a * 4, generator=g)
        state[f"conf.{i}.weight"] = torch.randn(a * num_classes, c, 3, 3, generator=g) * 0.01
        state[f"conf.{i}.bias"] = torch.randn(a * num_classes, generator=g)
    return state


@pytest.mark.parametrize("size,batch_norm,priors", [(300, False, 8732), (300, True, 8732), (512, False, 24564),
                                                    (512, True, 24564)])
def test_output_shapes(size, batch_norm, priors):
    model = VGGSSD(size, 4, batch_norm).eval()
    with torch.no_grad():
        loc, conf = model(torch.randint(0, 255, (2, 3, size, size), dtype=torch.uint8))
    assert loc.shape == (2, priors, 4) and conf.shape == (2, priors, 4) and model.priors.shape == (priors, 4)


def test_backbone_structure_matches_paper():
    model = VGGSSD(300, 21)
    fc6, fc7 = model.vgg[31], model.vgg[33]
    assert fc6.dilation == (6, 6) and fc6.padding == (6, 6) and fc6.kernel_size == (3, 3)
    assert fc7.kernel_size == (1, 1) and fc7.out_channels == 1024
    assert model.vgg[16].ceil_mode and model.vgg[30].kernel_size == 3 and model.vgg[30].stride == 1
    assert torch.all(model.l2norm.weight == 20)
    assert model.extras[-1].kernel_size == (3, 3)
    assert VGGSSD(512, 21).extras[-1].kernel_size == (4, 4)


def test_load_ssd_pytorch_vgg16_reducedfc(tmp_path):
    state = ssd_pytorch_vgg_state()
    path = tmp_path / "vgg16_reducedfc.pth"
    torch.save(state, path)
    for batch_norm in (False, True):
        model = VGGSSD(300, 21, batch_norm)
        assert load_basenet(model, path) == "caffe"
        convs = [m for m in model.vgg if isinstance(m, torch.nn.Conv2d)]
        for conv, index in zip(convs, SSD_PYTORCH_VGG_CONVS):
            assert torch.equal(conv.weight, state[f"{index}.weight"])
    if not batch_norm:
        assert set(model.vgg.state_dict()) == set(state)


def test_load_torchvision_vgg16_decimates_fc_layers(tmp_path):
    state = torchvision.models.vgg16(weights=None).state_dict()
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(state, path)
    model = VGGSSD(300, 21)
    assert load_basenet(model, path) == "torchvision"
    assert torch.equal(model.vgg[0].weight, state["features.0.weight"])
    assert torch.equal(model.vgg[28].weight, state["features.28.weight"])
    fc6, fc7 = state["classifier.0.weight"], state["classifier.3.weight"]
    # fc6 input index = channel * 49 + row * 7 + col; we keep filters 0,4,8,.. and taps 0,3,6 of the 7x7 grid.
    assert model.vgg[31].weight[1, 5, 2, 1] == fc6[4, 5 * 49 + 6 * 7 + 3]
    assert model.vgg[31].weight[255, 511, 0, 2] == fc6[1020, 511 * 49 + 0 * 7 + 6]
    assert model.vgg[31].bias[3] == state["classifier.0.bias"][12]
    assert model.vgg[33].weight[2, 7, 0, 0] == fc7[8, 28]
    assert model.vgg[33].weight.shape == (1024, 1024, 1, 1)
    # the converter script writes the same tensors plus the input format they expect
    from scripts.convert_vgg16 import main as convert
    convert(["--input", str(path), "--output", str(tmp_path / "reduced.pth")])
    other = VGGSSD(300, 21)
    assert load_basenet(other, tmp_path / "reduced.pth") == "torchvision"
    assert torch.equal(other.vgg[31].weight, model.vgg[31].weight)


def test_load_ssd_pytorch_checkpoint_same_outputs(tmp_path):
    state = ssd_pytorch_ssd300_state()
    path = tmp_path / "ssd300_mAP_77.43_v2.pth"
    torch.save(state, path)
    model = VGGSSD(300, 21).eval()
    load_ssd_weights(model, path)
    assert torch.equal(model.l2norm.weight, state["L2Norm.weight"])
    assert torch.equal(model.extras[7].weight, state["extras.7.weight"])
    assert torch.equal(model.conf[5].bias, state["conf.5.bias"])
    # ssd.pytorch fed its models RGB minus (123, 117, 104): a BGR pixel (10, 20, 30) must become (-93, -97, -94)
    pixel = torch.tensor([10.0, 20.0, 30.0]).view(1, 3, 1, 1)
    assert model.pixel_format == "ssd.pytorch"
    assert model.normalize(pixel).flatten().tolist() == [30 - 123, 20 - 117, 10 - 104]
    # and the same round trip through DataParallel-style keys
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "dp.pth")
    other = VGGSSD(300, 21).eval()
    load_ssd_weights(other, tmp_path / "dp.pth")
    x = torch.randint(0, 255, (1, 3, 300, 300), dtype=torch.uint8)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(x), other(x)))


def test_mismatched_weight_files_give_clear_errors(tmp_path):
    torch.save(ssd_pytorch_ssd300_state(num_classes=21), tmp_path / "voc.pth")
    with pytest.raises(WeightsError, match="21 classes.*model 4"):
        load_ssd_weights(VGGSSD(300, 4), tmp_path / "voc.pth")
    with pytest.raises(WeightsError, match="BatchNorm"):
        load_ssd_weights(VGGSSD(300, 21, batch_norm=True), tmp_path / "voc.pth")
    with pytest.raises(WeightsError, match="not a VGG16 backbone"):
        load_basenet(VGGSSD(300, 21), tmp_path / "voc.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pth: corrupt or truncated") as caught:
        load_ssd_weights(VGGSSD(300, 21), tmp_path / "junk.pth")
    assert "weights_only" not in str(caught.value)
    torch.save({"model": VGGSSD(300, 4).state_dict(), "note": argparse.Namespace(a=1)}, tmp_path / "pickle.pth")
    with pytest.raises(WeightsError, match="pickle.pth: holds Python objects") as caught:
        load_ssd_weights(VGGSSD(300, 21), tmp_path / "pickle.pth")
    assert "weights_only" not in str(caught.value)
    data = (tmp_path / "voc.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="cut.pth: corrupt or truncated"):
        load_ssd_weights(VGGSSD(300, 21), tmp_path / "cut.pth")
    with pytest.raises(WeightsError, match="not found.*--basenet none"):
        load_basenet(VGGSSD(300, 21), tmp_path / "missing.pth")
    bad = ssd_pytorch_vgg_state()
    bad["31.weight"] = torch.zeros(1024, 512, 7, 7)
    torch.save(bad, tmp_path / "bad_vgg.pth")
    with pytest.raises(WeightsError, match="conv layer 13"):
        load_basenet(VGGSSD(300, 21), tmp_path / "bad_vgg.pth")


@pytest.mark.skipif(not os.path.isfile(os.path.join(SHARED, "vgg16_reducedfc.pth")),
                    reason="../shared has no vgg16_reducedfc.pth")
def test_real_vgg16_reducedfc():
    path = os.path.join(SHARED, "vgg16_reducedfc.pth")
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert digest == KNOWN_FILES["vgg16_reducedfc.pth"]
    assert load_basenet(VGGSSD(300, 21), path) == "caffe"
