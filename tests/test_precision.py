"""Precision: `--amp auto` (bfloat16 autocast for training where the device computes it natively, float32 for
inference and elsewhere), the depthwise convolutions SSDLite keeps in float32 under CPU autocast, and what a run
says about it."""
import logging

import pytest
import torch

import train
from config_resolve import config_for
from engine import detector
from engine.detector import Detector, choose_precision
from engine.loading import choose_runtime
from engine.trainer import Trainer
from models import build_model
from models.mobilenet import DepthwiseConv2d
from models.weights import read_state

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("native", [True, False])
def test_auto_trains_in_bf16_only_on_a_cpu_that_computes_it(monkeypatch, native):
    monkeypatch.setattr(detector, "cpu_has_native_bf16", lambda: native)
    amp, why = choose_precision("auto", CPU, training=True)
    assert amp == ("bf16" if native else "off")
    assert why.startswith("auto: ") and ("natively" in why) == native
    assert choose_precision("auto", CPU, training=False)[0] == "off"  # inference stays float32


def test_auto_trains_efficientnet_lite_in_float32_on_a_cpu(monkeypatch):
    # bfloat16 autocast slows its step on a CPU (cpu/lite.json: 5.22 against 5.83 img/s), not on a GPU
    monkeypatch.setattr(detector, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    amp, why = choose_precision("auto", CPU, training=True, backbone="efficientnet_lite0")
    assert (amp, why) == ("off", "auto: float32, bfloat16 does not speed efficientnet_lite0's training on a CPU")
    assert choose_precision("auto", CPU, training=True, backbone="mobilenet_v3")[0] == "bf16"
    assert choose_precision("auto", CUDA, training=True, backbone="efficientnet_lite0")[0] == "bf16"
    assert choose_precision("bf16", CPU, training=True, backbone="efficientnet_lite0")[0] == "bf16"


@pytest.mark.parametrize("supported", [True, False])
def test_auto_on_a_gpu_follows_its_bf16_support(monkeypatch, supported):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
    assert choose_precision("auto", CUDA, training=True)[0] == ("bf16" if supported else "off")
    assert choose_precision("auto", CUDA, training=False)[0] == "off"


@pytest.mark.parametrize("amp", ["off", "bf16", "fp16"])
def test_an_explicit_amp_is_kept_as_given(amp):
    for device in (CPU, CUDA):
        for training in (True, False):
            assert choose_precision(amp, device, training) == (amp, f"--amp {amp}")


def test_this_machines_capability_comes_from_torch():
    # the answer is torch's own capability check, whatever the processor's name
    expected = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert detector.cpu_has_native_bf16() == expected


def test_depthwise_convolutions_run_channels_last_float32_on_cpu():
    cfg = config_for("shapes", backbone="mobilenet_v3", basenet="none")
    model = build_model(cfg).eval()
    depthwise = [m for m in model.modules() if isinstance(m, DepthwiseConv2d)]
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(depthwise) == sum(m.groups > 1 for m in convs) == 31  # 15 backbone, 4 extra, 12 head
    assert all(m.groups == m.in_channels == m.out_channels for m in depthwise)
    conv = depthwise[0]
    x = torch.randn(2, conv.in_channels, 12, 12)
    reference = torch.nn.functional.conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation,
                                           conv.groups)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = conv(x.bfloat16())
        pointwise = torch.nn.functional.conv2d(x, torch.randn(4, conv.in_channels, 1, 1))
    assert inside.dtype == torch.float32 and pointwise.dtype == torch.bfloat16
    assert inside.is_contiguous(memory_format=torch.channels_last)  # the fast layout, carried on
    torch.testing.assert_close(inside, torch.nn.functional.conv2d(x.bfloat16().float(), conv.weight, None,
                                                                  conv.stride, conv.padding, conv.dilation,
                                                                  conv.groups))
    torch.testing.assert_close(conv(x), reference)  # without autocast: nn.Conv2d's result
    m = cfg.model
    assert set(model.state_dict()) == set(type(model)(m.size, m.num_classes, m.prior_layout).state_dict())


def test_the_start_up_line_says_the_precision_and_off_keeps_float32(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(detector, "cpu_has_native_bf16", lambda: True)
    base = dict(shapes_train_images=2, shapes_test_images=2, batch_size=2, workers=0, tensorboard=False,
                backbone="mobilenet_v3", basenet="none")
    seen = []
    original = torch.autocast.__init__

    def spy(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        seen.append((dtype, enabled))
        original(self, device_type, dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

    monkeypatch.setattr(torch.autocast, "__init__", spy)
    images = torch.randint(0, 255, (2, 3, 320, 320), dtype=torch.uint8)
    targets = torch.tensor([[[0.1, 0.1, 0.6, 0.6, 0.0]], [[0.2, 0.3, 0.9, 0.8, 1.0]]])
    with caplog.at_level(logging.INFO, logger="ssd"):
        auto = Trainer(config_for("shapes", output=str(tmp_path / "auto"), **base), device=CPU)
        off = Trainer(config_for("shapes", output=str(tmp_path / "off"), amp="off", **base), device=CPU)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("precision:")]
    assert lines == ["precision: bfloat16 autocast, weights in float32 (auto: this CPU computes bfloat16 natively, "
                     "AVX512-BF16 or AMX); --amp off for float32", "precision: float32 (--amp off)"]
    for trainer, expected in ((auto, (torch.bfloat16, True)), (off, (None, False))):
        seen.clear()
        trainer.step(images, targets)
        assert seen[0] == expected
        assert trainer.cfg.run.amp in ("auto", "off")  # the config (and so the checkpoint) keeps what was asked
    assert all(p.dtype == torch.float32 for p in auto.model.parameters())


def test_a_checkpoint_keeps_auto_and_evaluation_stays_float32_on_onnx_runtime(tmp_path):
    folder = str(tmp_path / "run")
    assert train.main(["--dataset", "shapes", "--shapes-train-images", "2", "--shapes-test-images", "2",
                       "--batch-size", "2", "--workers", "0", "--max-iter", "1", "--no-final-eval",
                       "--no-tensorboard", "--backbone", "mobilenet_v3", "--basenet", "none",
                       "--output", folder]) == 0
    saved = read_state(f"{folder}/final.pth")["config"]
    assert saved["amp"] == "auto"
    cfg = config_for("shapes", **{k: saved[k] for k in ("backbone", "basenet", "amp")})
    model = build_model(cfg)
    assert Detector.from_config(model, cfg).amp == "off"
    assert choose_runtime("auto", CPU, cfg)[0] in ("onnxruntime", "torch")
    assert "amp" not in choose_runtime("auto", CPU, cfg)[1]
    assert "--amp is a PyTorch setting" in choose_runtime("auto", CPU, cfg.replace(amp="bf16"))[1]
