"""Export a trained SSD (network + softmax + box decoding) to ONNX.

    python -m scripts.export_onnx --weights runs/RUN/final.pth              # writes runs/RUN/ssd300.onnx

The graph takes `images`: uint8 [B, 3, S, S] BGR (batch size dynamic) and returns `boxes` [B, P, 4]
(x1, y1, x2, y2 in [0, 1]) and `scores` [B, P, C] (softmax, column 0 = background). Per-class NMS is left to the
runtime (e.g. layers.postprocess's recipe: score >= 0.01, top 400 per class, IoU 0.45, top 200 per image).
Uses the TorchScript-based exporter (no onnxscript needed).
"""
import os
import sys
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from config import Config, ConfigError, Parser, add_flags, flags_given
from engine import load_model
from utils.checkpoint import WeightsError
from utils.output import OutputError, check_output_file


class DecodedSSD(nn.Module):
    """SSD followed by softmax and prior decoding: images -> (boxes [B, P, 4], scores [B, P, C])."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        loc, conf = self.model(images)
        return self.model.box_coder.decode(loc), F.softmax(conf, dim=-1)


def export(model, path: str, opset: int = 17) -> DecodedSSD:
    wrapped = DecodedSSD(model.eval()).eval()
    example = torch.zeros(1, 3, model.size, model.size, dtype=torch.uint8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(wrapped, (example,), path, dynamo=False, opset_version=opset, input_names=["images"],
                          output_names=["boxes", "scores"],
                          dynamic_axes={"images": {0: "batch"}, "boxes": {0: "batch"}, "scores": {0: "batch"}})
    return wrapped


def parse_args(argv=None):
    parser = Parser(__doc__)
    parser.add_argument("--weights", help="train.py checkpoint or plain SSD weights (required)")
    parser.add_argument("--output", help="the .onnx file to write (default: ssd<size>.onnx beside --weights)")
    add_flags(parser, ("size", "labels", "batch_norm"), Config(),
              shown={"size": "the checkpoint's, else 300", "labels": "the checkpoint's, else VOC's",
                     "batch_norm": "the checkpoint's, else off"})
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset version (default: 17)")
    args = parser.parse_args(argv)
    if not args.weights:
        parser.error("--weights is required")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.output:
            check_output_file(args.output, "--output")
        model, cfg = load_model(args.weights, "cpu", flags_given(args))
        output = args.output or os.path.join(os.path.dirname(os.path.abspath(args.weights)), f"ssd{cfg.size}.onnx")
        check_output_file(output, "--output")
        export(model, output, args.opset)
    except (WeightsError, ConfigError, OutputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {output} (input uint8 [B, 3, {cfg.size}, {cfg.size}] BGR; outputs boxes, scores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
