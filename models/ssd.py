"""SSD300/SSD512 on a VGG16 reduced-fc backbone (Liu et al., 2016), optionally with BatchNorm."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from config import BACKBONES, PIXEL_FORMATS, PRIORS
from layers import BoxCoder, PriorBox

# conv1_1 .. conv5_3 as in VGG16; 'M' max-pool, 'C' max-pool with ceil_mode (pool3: 75 -> 38 at 300).
VGG_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "C", 512, 512, 512, "M", 512, 512, 512]
# Extra feature layers: (1x1 channels, 3x3 channels, 3x3 stride, 3x3 padding, 3x3 kernel) per block.
EXTRAS_CFG = {
    300: [(256, 512, 2, 1, 3), (128, 256, 2, 1, 3), (128, 256, 1, 0, 3), (128, 256, 1, 0, 3)],
    512: [(256, 512, 2, 1, 3), (128, 256, 2, 1, 3), (128, 256, 2, 1, 3), (128, 256, 2, 1, 3),
          (128, 256, 1, 1, 4)],
}


def _conv(in_ch, out_ch, batch_norm, **kwargs):
    """A conv layer, or conv + BN in the BatchNorm variant (one module either way, so indices stay put)."""
    conv = nn.Conv2d(in_ch, out_ch, bias=not batch_norm, **kwargs)
    return nn.Sequential(conv, nn.BatchNorm2d(out_ch)) if batch_norm else conv


def vgg_reduced_fc(batch_norm: bool = False):
    """VGG16 with fc6/fc7 as convolutions (fc6: 3x3, dilation 6; fc7: 1x1) and pool5 3x3/s1/p1.

    -> (nn.ModuleList, index just after conv4_3's ReLU). Without BN the list is exactly ssd.pytorch's
    (35 modules, parameters at 0..33), so its `vgg16_reducedfc.pth` and SSD checkpoints load by key.
    """
    layers, in_ch, conv4_3_end, convs = [], 3, None, 0
    for v in VGG_CFG:
        if v in ("M", "C"):
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=(v == "C")))
            continue
        if batch_norm:
            layers += [nn.Conv2d(in_ch, v, kernel_size=3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
        else:
            layers += [nn.Conv2d(in_ch, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
        in_ch, convs = v, convs + 1
        if convs == 10:
            conv4_3_end = len(layers)
    layers.append(nn.MaxPool2d(kernel_size=3, stride=1, padding=1))
    fc6 = [nn.Conv2d(512, 1024, kernel_size=3, padding=6, dilation=6)]
    fc7 = [nn.Conv2d(1024, 1024, kernel_size=1)]
    if batch_norm:
        fc6.append(nn.BatchNorm2d(1024))
        fc7.append(nn.BatchNorm2d(1024))
    layers += fc6 + [nn.ReLU(inplace=True)] + fc7 + [nn.ReLU(inplace=True)]
    return nn.ModuleList(layers), conv4_3_end


def extra_layers(size: int, batch_norm: bool = False) -> nn.ModuleList:
    """Extra feature layers after fc7; every second layer's output is a source map (ssd.pytorch's order)."""
    layers, in_ch = [], 1024
    for mid, out, stride, padding, kernel in EXTRAS_CFG[size]:
        layers.append(_conv(in_ch, mid, batch_norm, kernel_size=1))
        layers.append(_conv(mid, out, batch_norm, kernel_size=kernel, stride=stride, padding=padding))
        in_ch = out
    return nn.ModuleList(layers)


class L2Norm(nn.Module):
    """Channel-wise L2 normalisation with a learnable per-channel scale (ParseNet), initialised to 20."""

    def __init__(self, channels: int, scale: float = 20.0, eps: float = 1e-10):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))
        self.eps = eps

    def forward(self, x):
        norm = x.float().pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps
        return (x.float() / norm * self.weight[None, :, None, None]).to(x.dtype)


class InputNormalizer(nn.Module):
    """BGR 0..255 images (uint8 or float) [B, 3, H, W] -> the input the backbone weights were trained on."""

    def __init__(self, pixel_format: str = "caffe"):
        super().__init__()
        if pixel_format not in PIXEL_FORMATS:
            raise ValueError(f"unknown pixel format {pixel_format!r}; choose one of {sorted(PIXEL_FORMATS)}")
        spec = PIXEL_FORMATS[pixel_format]
        self.pixel_format = pixel_format
        self.rgb = spec["rgb"]
        self.register_buffer("mean", torch.tensor(spec["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("inv_std", 1.0 / torch.tensor(spec["std"]).view(1, 3, 1, 1), persistent=False)

    def forward(self, images):
        x = images.float()
        if self.rgb:
            x = x[:, [2, 1, 0]]
        return (x - self.mean) * self.inv_std


def init_new_layers(modules):
    """Xavier for the convolutions the backbone's ImageNet weights do not cover (extras, heads), as Caffe SSD."""
    for module in modules:
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


class SSD(nn.Module):
    """What every SSD shares, whatever its backbone: input normalisation, `features(images)` -> source feature maps
    (the subclass's), a loc and a conf head per map, and the box coder over the priors of `prior_layout`.
    `loc, conf = model(images)`: images BGR 0..255 [B, 3, S, S] -> loc [B, P, 4], conf [B, P, C] (logits).

    `model.box_coder` (the priors [P, 4] (cx, cy, w, h) and the variances) belongs to the model and is handed to
    the loss and the post-processor; `model.priors` is its priors. A new backbone is one subclass in one file
    (models/resnet.py, models/mobilenet.py) and a line in `models.BACKBONES`.
    """

    backbone_name = ""
    backbone_parts = ()  # the attributes holding the ImageNet network's layers (the rest is new)

    def __init__(self, size: int, num_classes: int, prior_layout: dict, pixel_format: str):
        super().__init__()
        sizes = BACKBONES[self.backbone_name].sizes
        if size not in sizes:
            raise ValueError(f"the {self.backbone_name} SSD is built for size {' or '.join(map(str, sizes))}, "
                             f"got {size}")
        if prior_layout["min_dim"] != size:
            raise ValueError(f"prior config is for {prior_layout['min_dim']}, the model for {size}")
        self.size, self.num_classes, self.prior_layout = size, num_classes, prior_layout
        self.normalize = InputNormalizer(pixel_format)

    def build_heads(self, source_channels: list, head=None):
        """A loc and a conf head per source map (3x3 convs unless `head(channels, outputs)` says otherwise), and
        the box coder."""
        prior_box = PriorBox(self.prior_layout)
        anchors = prior_box.boxes_per_location()
        if len(anchors) != len(source_channels):
            raise ValueError(f"prior config has {len(anchors)} feature maps, the network {len(source_channels)}")
        head = head or (lambda channels, outputs: nn.Conv2d(channels, outputs, 3, padding=1))
        self.loc = nn.ModuleList(head(c, a * 4) for c, a in zip(source_channels, anchors))
        self.conf = nn.ModuleList(head(c, a * self.num_classes) for c, a in zip(source_channels, anchors))
        self.box_coder = BoxCoder(prior_box.forward(), self.prior_layout["variance"])

    @classmethod
    def from_config(cls, cfg) -> "SSD":
        return cls(cfg.model.size, cfg.model.num_classes, cfg.model.prior_layout, cfg.model.pixel_format)

    @property
    def priors(self) -> torch.Tensor:
        return self.box_coder.priors

    def set_pixel_format(self, pixel_format: str):
        """The input format the loaded weights expect (see config.PIXEL_FORMATS)."""
        self.normalize = InputNormalizer(pixel_format).to(self.box_coder.priors.device)

    @property
    def pixel_format(self) -> str:
        return self.normalize.pixel_format

    def backbone_modules(self) -> list:
        return [getattr(self, name) for name in self.backbone_parts]

    def freeze_backbone_bn(self):
        """The backbone's BatchNorm layers stay in eval mode (their ImageNet statistics) with fixed scales."""
        self.frozen_bn = [m for module in self.backbone_modules() for m in module.modules()
                          if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for m in self.frozen_bn:
            m.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in getattr(self, "frozen_bn", ()):
            m.eval()
        return self

    def features(self, images) -> list:
        raise NotImplementedError

    def forward(self, images):
        sources = self.features(images)
        batch = images.shape[0]
        loc = torch.cat([head(s).permute(0, 2, 3, 1).reshape(batch, -1, 4) for s, head in zip(sources, self.loc)], 1)
        conf = torch.cat([head(s).permute(0, 2, 3, 1).reshape(batch, -1, self.num_classes)
                          for s, head in zip(sources, self.conf)], 1)
        return loc, conf


class VGGSSD(SSD):
    """The paper's SSD300/SSD512 on VGG16 reduced-fc (optionally with BatchNorm); see `SSD`."""

    backbone_name = "vgg16"
    backbone_parts = ("vgg",)

    def __init__(self, size: int, num_classes: int, batch_norm: bool = False, prior_layout: dict = None,
                 pixel_format: str = "caffe"):
        super().__init__(size, num_classes, prior_layout or PRIORS[("voc", size if size in EXTRAS_CFG else 300)],
                         pixel_format)
        self.batch_norm = batch_norm
        self.vgg, self.conv4_3_end = vgg_reduced_fc(batch_norm)
        self.l2norm = L2Norm(512)
        self.extras = extra_layers(size, batch_norm)
        self.build_heads([512, 1024] + [block[1] for block in EXTRAS_CFG[size]])
        self.reset_parameters()

    @classmethod
    def from_config(cls, cfg) -> "SSD":
        m = cfg.model
        return cls(m.size, m.num_classes, m.batch_norm, m.prior_layout, m.pixel_format)

    def reset_parameters(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if any(m is v for v in self.vgg):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                else:
                    nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, images):
        """Source feature maps: conv4_3 (L2-normalised), fc7 and the extra layers' outputs."""
        x = self.normalize(images)
        for layer in self.vgg[: self.conv4_3_end]:
            x = layer(x)
        sources = [self.l2norm(x)]
        for layer in self.vgg[self.conv4_3_end:]:
            x = layer(x)
        sources.append(x)
        for i, layer in enumerate(self.extras):
            x = F.relu(layer(x), inplace=True)
            if i % 2 == 1:
                sources.append(x)
        return sources
