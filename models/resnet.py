"""SSD300 on a ResNet-50 backbone, as NVIDIA's SSD300 v1.1 describes it: the conv5_x stage removed, the first
block of conv4_x at stride 1 (so its 1024-channel output is 38x38 for a 300x300 input), then five extra blocks
(1x1 conv to 256/256/128/128/128 channels, 3x3 conv to 512/512/256/256/256, BatchNorm and ReLU after each; the
first three at stride 2, the last two unpadded), giving the same six maps as VGG16's SSD300
(38, 19, 10, 5, 3, 1) and so the same 8732 priors. Initialised from torchvision's ImageNet ResNet-50 weights.
"""
import torch.nn as nn
import torchvision

from .ssd import SSD, init_new_layers

EXTRAS = [(1024, 256, 512, 2, 1), (512, 256, 512, 2, 1), (512, 128, 256, 2, 1), (256, 128, 256, 1, 0),
          (256, 128, 256, 1, 0)]  # (in, 1x1 channels, out, 3x3 stride, 3x3 padding)


def resnet50_trunk() -> nn.Sequential:
    """conv1 .. conv4_x of torchvision's ResNet-50, conv4_x's first block at stride 1."""
    resnet = torchvision.models.resnet50(weights=None)
    block = resnet.layer3[0]
    block.conv2.stride = (1, 1)
    block.downsample[0].stride = (1, 1)
    return nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool, resnet.layer1, resnet.layer2,
                         resnet.layer3)


class ResNetSSD(SSD):
    """SSD300 with NVIDIA's ResNet-50 layout; `loc, conf = model(images)` as `SSD`."""

    backbone_name = "resnet50"
    backbone_parts = ("trunk",)

    def __init__(self, size: int, num_classes: int, prior_layout: dict, pixel_format: str = "torchvision"):
        super().__init__(size, num_classes, prior_layout, pixel_format)
        self.trunk = resnet50_trunk()
        self.extras = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                          nn.Conv2d(mid, cout, 3, stride=stride, padding=pad, bias=False), nn.BatchNorm2d(cout),
                          nn.ReLU(inplace=True))
            for cin, mid, cout, stride, pad in EXTRAS)
        self.build_heads([1024] + [cout for _, _, cout, _, _ in EXTRAS])
        init_new_layers([self.extras, self.loc, self.conf])

    def features(self, images):
        x = self.trunk(self.normalize(images))
        sources = [x]
        for block in self.extras:
            x = block(x)
            sources.append(x)
        return sources

    def load_backbone(self, state: dict):
        """torchvision's ResNet-50 state dict -> the trunk (the fc layer and conv5_x are not used)."""
        names = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6"}
        mapped = {names[k.split(".")[0]] + k[len(k.split(".")[0]):]: v for k, v in state.items()
                  if k.split(".")[0] in names}
        self.trunk.load_state_dict(mapped)
