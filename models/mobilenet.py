"""SSDLite320 on a MobileNetV3-Large backbone (the layout torchvision's ssdlite320_mobilenet_v3_large and the
MobileNetV3 paper describe): the backbone's features up to the expansion layer of the first stride-32 block
(672 channels, 20x20 for a 320x320 input) and its last layer (960 channels, 10x10), then four depthwise-separable
extra blocks (512, 256, 256, 128 channels: 5x5, 3x3, 2x2, 1x1), and SSDLite heads (3x3 depthwise conv, BatchNorm,
ReLU6, 1x1 conv) with six priors per location (scales 0.2 to 0.95). Initialised from torchvision's ImageNet
MobileNetV3-Large weights, or from scratch as torchvision's SSDLite: every convolution N(0, 0.03), BatchNorm with
eps 0.001 and momentum 0.03 throughout.
"""
from functools import partial

import torch
import torch.nn as nn
import torchvision

from .ssd import SSD

EXTRA_CHANNELS = (512, 256, 256, 128)


BatchNorm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)


def normal_init(module: nn.Module, std: float = 0.03):
    """Every convolution N(0, std), biases 0: torchvision's SSDLite initialisation without a pretrained backbone."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class DepthwiseConv2d(nn.Conv2d):
    """A depthwise convolution that runs on a CPU in channels-last float32, under autocast too. oneDNN's NCHW
    depthwise kernels are several times slower than its channels-last ones, and its bfloat16 ones slower than
    float32, while the 1x1 convolutions beside it gain from bfloat16 (benchmarks/bench_train_step.py --arch
    mobilenet_v3). The channels-last output carries on through the layers after it. Same parameters and state
    dict as nn.Conv2d."""

    def forward(self, x):
        if x.device.type != "cpu":
            return super().forward(x)
        x = x.contiguous(memory_format=torch.channels_last)
        if torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())
        return super().forward(x)


def depthwise_in_float32(module: nn.Module):
    """Every depthwise nn.Conv2d in `module` (torchvision's backbone blocks included) -> DepthwiseConv2d."""
    for m in module.modules():
        if type(m) is nn.Conv2d and m.groups > 1 and m.groups == m.in_channels:
            m.__class__ = DepthwiseConv2d


def backbone_features() -> nn.Sequential:
    return torchvision.models.mobilenet_v3_large(weights=None, norm_layer=BatchNorm).features


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         BatchNorm(cout), nn.ReLU6(inplace=True))


def extra_block(cin: int, cout: int) -> nn.Sequential:
    """1x1 to cout/2, 3x3 depthwise at stride 2, 1x1 to cout."""
    mid = cout // 2
    return nn.Sequential(_conv_bn(cin, mid, 1), _conv_bn(mid, mid, 3, 2, groups=mid), _conv_bn(mid, cout, 1))


class SSDLiteHead(nn.Module):
    """3x3 depthwise conv + BatchNorm + ReLU6, then a 1x1 conv to anchors x outputs."""

    def __init__(self, channels: int, outputs: int):
        super().__init__()
        self.depthwise = _conv_bn(channels, channels, 3, groups=channels)
        self.pointwise = nn.Conv2d(channels, outputs, 1)
        self.out_channels = outputs

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


def split_features(features: nn.Sequential) -> tuple:
    """MobileNetV3 features -> (up to the expansion layer of the last stride-2 block, the rest, their channels)."""
    c4 = max(i for i, block in enumerate(features) if getattr(block, "_is_cn", False))
    head = nn.Sequential(*features[:c4], features[c4].block[0])
    tail = nn.Sequential(*features[c4].block[1:], *features[c4 + 1:])
    return head, tail, features[c4].block[0][0].out_channels, features[-1].out_channels


class SSDLite(SSD):
    """What the SSDLite detectors share: the backbone's stride-16 features (`stage4`) and stride-32 features
    (`stage5`), then the depthwise-separable extra blocks, each output a source map."""

    backbone_parts = ("stage4", "stage5")

    def features(self, images):
        return self.later_features(self.stage4(self.normalize(images)))

    def later_features(self, c4) -> list:
        """The stride-16 features -> the source maps from there on: c4, stage5's output, each extra block's."""
        x = self.stage5(c4)
        sources = [c4, x]
        for block in self.extras:
            x = block(x)
            sources.append(x)
        return sources


class MobileNetSSDLite(SSDLite):
    """SSDLite320 on MobileNetV3-Large; `loc, conf = model(images)` as `SSD`."""

    backbone_name = "mobilenet_v3"

    def __init__(self, size: int, num_classes: int, prior_layout: dict, pixel_format: str = "torchvision"):
        super().__init__(size, num_classes, prior_layout, pixel_format)
        features = backbone_features()
        self.stage4, self.stage5, c4_channels, c5_channels = split_features(features)
        channels = [c4_channels, c5_channels, *EXTRA_CHANNELS]
        self.extras = nn.ModuleList(extra_block(cin, cout) for cin, cout in zip(channels[1:-1], channels[2:]))
        self.build_heads(channels, head=SSDLiteHead)
        normal_init(self)
        depthwise_in_float32(self)

    def load_backbone(self, state: dict):
        """torchvision's MobileNetV3-Large state dict -> the two backbone stages (its classifier is not used)."""
        features = backbone_features()
        features.load_state_dict({k[len("features."):]: v for k, v in state.items() if k.startswith("features.")})
        head, tail, _, _ = split_features(features)
        self.stage4.load_state_dict(head.state_dict())
        self.stage5.load_state_dict(tail.state_dict())
