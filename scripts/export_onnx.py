"""Export a trained SSD (network + softmax + box decoding) to ONNX.

    python scripts/export_onnx.py --weights weights/run/final.pth --output weights/ssd300.onnx

The graph takes `images`: uint8 [B, 3, S, S] BGR (batch size dynamic) and returns `boxes` [B, P, 4]
(x1, y1, x2, y2 in [0, 1]) and `scores` [B, P, C] (softmax, column 0 = background). Per-class NMS is left to the
runtime (e.g. layers.postprocess's recipe: score >= 0.01, top 400 per class, IoU 0.45, top 200 per image).
Uses the TorchScript-based exporter (no onnxscript needed).
"""
import argparse
import os
import sys
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from layers import decode  # noqa: E402
from utils.evaluation import load_model  # noqa: E402


class DecodedSSD(nn.Module):
    """SSD followed by softmax and prior decoding: images -> (boxes [B, P, 4], scores [B, P, C])."""

    def __init__(self, model, variances=(0.1, 0.2)):
        super().__init__()
        self.model, self.variances = model, tuple(variances)

    def forward(self, images):
        loc, conf = self.model(images)
        return decode(loc, self.model.priors, self.variances), F.softmax(conf, dim=-1)


def export(model, path: str, variances=(0.1, 0.2), opset: int = 17) -> DecodedSSD:
    wrapped = DecodedSSD(model.eval(), variances).eval()
    example = torch.zeros(1, 3, model.size, model.size, dtype=torch.uint8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(wrapped, (example,), path, dynamo=False, opset_version=opset, input_names=["images"],
                          output_names=["boxes", "scores"],
                          dynamic_axes={"images": {0: "batch"}, "boxes": {0: "batch"}, "scores": {0: "batch"}})
    return wrapped


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--output", default="weights/ssd.onnx")
    parser.add_argument("--size", type=int, choices=[300, 512], help="plain weights: input size")
    parser.add_argument("--labels", nargs="+", help="plain weights: class names")
    parser.add_argument("--opset", type=int, default=17)
    args = parser.parse_args(argv)
    model, cfg = load_model(args.weights, "cpu", dict(size=args.size, labels=args.labels))
    export(model, args.output, cfg.priors()["variance"], args.opset)
    print(f"wrote {args.output} (input uint8 [B, 3, {cfg.size}, {cfg.size}] BGR; outputs boxes, scores)")


if __name__ == "__main__":
    main()
