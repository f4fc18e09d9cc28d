"""Convert torchvision's ImageNet VGG16 (vgg16-397923af.pth) into a reduced-fc backbone file.

    python -m scripts.convert_vgg16 [--input vgg16-397923af.pth] [--output weights/vgg16_tv_reducedfc.pth]

Without --input it asks torchvision for the weights (downloaded to the torch hub cache). fc6/fc7 are decimated
as in the paper (see models/weights.py: decimate_torchvision_vgg16). The result has ssd.pytorch's keys
(0.weight .. 33.bias) plus `"pixel_format": "torchvision"`: these weights expect RGB/255 input normalised by
the ImageNet mean/std, and train.py sets the model's input normalisation from that entry. (train.py also takes
the torchvision file itself as `--basenet` and converts it on the fly.)
"""
import argparse
import os

import torch

from models.weights import decimate_torchvision_vgg16, read_state


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", help="torchvision VGG16 state dict (default: download through torchvision)")
    parser.add_argument("--output", default="weights/vgg16_tv_reducedfc.pth")
    args = parser.parse_args(argv)
    if args.input:
        state = read_state(args.input)
    else:
        import torchvision
        state = torchvision.models.vgg16(weights=torchvision.models.VGG16_Weights.IMAGENET1K_V1).state_dict()
    reduced = decimate_torchvision_vgg16(state)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    torch.save({**reduced, "pixel_format": "torchvision"}, args.output)
    print(f"wrote {args.output}: fc6 {tuple(reduced['31.weight'].shape)}, fc7 {tuple(reduced['33.weight'].shape)}")


if __name__ == "__main__":
    main()
