from .efficientnet import EfficientNetLiteSSD
from .mobilenet import MobileNetSSDLite
from .resnet import ResNetSSD
from .ssd import SSD, VGGSSD, L2Norm, extra_layers, vgg_reduced_fc
from .weights import WeightsError, load_backbone, load_basenet, load_ssd_weights

# The backbones `--backbone` chooses from: one class each (see SSD), built from a Config.
BACKBONES = {"vgg16": VGGSSD, "resnet50": ResNetSSD, "mobilenet_v3": MobileNetSSDLite,
             **{f"efficientnet_lite{k}": EfficientNetLiteSSD for k in range(3)}}


def build_model(cfg) -> SSD:
    """The network a config describes (backbone, size, classes, variant, priors, pixel format)."""
    return BACKBONES[cfg.model.backbone].from_config(cfg)


__all__ = ["SSD", "VGGSSD", "ResNetSSD", "MobileNetSSDLite", "EfficientNetLiteSSD", "BACKBONES", "build_model",
           "L2Norm", "vgg_reduced_fc", "extra_layers", "load_backbone", "load_basenet", "load_ssd_weights",
           "WeightsError"]
