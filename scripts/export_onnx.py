"""Export a trained SSD to ONNX: the whole detector (--nms), optionally INT8, or the network with box decoding.

    python -m scripts.export_onnx --weights runs/RUN/final.pth --nms       # runs/RUN/ssd300.detector.onnx
    python -m scripts.export_onnx --weights runs/RUN/final.pth --int8 --calibration-images DIR
    python -m scripts.export_onnx --weights runs/RUN/final.pth             # network + decoding: ssd300.onnx

Every graph takes `images`: uint8 [B, 3, S, S] BGR (batch size dynamic; resize with engine.preprocess).
--nms: the whole detector, post-processing included (softmax, decoding, clipping, per-class NMS, top-k), outputs
boxes [B, T, 4] (x1, y1, x2, y2 in [0, 1]), scores [B, T], labels [B, T] (class index), counts [B]: each
image's first counts[b] rows are its detections, by descending score; the same detections as eval.py's.
--int8: that graph with its convolutions statically quantised to INT8, calibrated on your images.
Without either: boxes [B, P, 4] and scores [B, P, C] (softmax, column 0 = background) for your own NMS.
eval.py and detect.py run a whole-detector file given as --weights.
"""
import os
import sys

from config import Config
from config_flags import add_flags, flags_given
from data import PHOTO_EXTENSIONS, image_files, read_image
from engine import export_onnx, load_model
from engine.deploy import onnxruntime_version, quantize_int8
from engine.evaluate import evenly_spaced
from utils.cli import Parser, entry_point
from utils.errors import ConfigError, UserError
from utils.output import check_output_file


def parse_args(argv=None):
    parser = Parser(__doc__)
    parser.add_argument("--weights", help="train.py checkpoint or plain SSD weights (required)")
    parser.add_argument("--output", help="the .onnx file to write (default: beside --weights, see above)")
    parser.add_argument("--nms", dest="graph_nms", action="store_true",
                        help="the whole detector, post-processing in the graph")
    parser.add_argument("--int8", action="store_true", help="INT8 convolutions (implies --nms); needs "
                                                             "--calibration-images")
    parser.add_argument("--calibration-images", metavar="DIR", help="folder of images like the ones the model "
                                                                    "will see (e.g. the training images)")
    parser.add_argument("--calibration-count", type=int, default=100,
                        help="images read from --calibration-images, evenly spaced (default: 100)")
    add_flags(parser, ("size", "class_names", "batch_norm", "score_thresh", "nms_thresh", "top_k", "pre_nms_top_k"),
              Config(), shown={"size": "the checkpoint's, else 300", "class_names": "the checkpoint's, else VOC's",
                               "batch_norm": "the checkpoint's, else off"})
    args = parser.parse_args(argv)
    if not args.weights:
        parser.error("--weights is required")
    if args.int8 and not args.calibration_images:
        parser.error("--int8 needs --calibration-images DIR (a folder of images to calibrate the INT8 ranges on)")
    if args.calibration_images and not args.int8:
        parser.error("--calibration-images is for --int8; add --int8")
    if args.calibration_count < 1:
        parser.error(f"--calibration-count must be a whole number >= 1 (got {args.calibration_count})")
    args.graph_nms = args.graph_nms or args.int8
    return args


def calibration_images(folder: str, count: int) -> list:
    """Up to `count` evenly spaced readable images of `folder` (unreadable ones are counted and said)."""
    if not os.path.isdir(folder):
        raise UserError(f"--calibration-images {folder}: no such folder")
    paths = image_files(folder)
    if not paths:
        raise UserError(f"--calibration-images {folder}: no images ({', '.join(PHOTO_EXTENSIONS)})")
    images, unreadable = [], []
    for index in evenly_spaced(len(paths), count):
        try:
            images.append(read_image(paths[index]))
        except ValueError:
            unreadable.append(os.path.basename(paths[index]))
    if unreadable:
        print(f"calibration: {len(unreadable)} unreadable image(s) skipped, first: {unreadable[0]}")
    if not images:
        raise UserError(f"--calibration-images {folder}: none of its images could be read")
    return images


@entry_point
def main(argv=None):
    args = parse_args(argv)
    if args.graph_nms and onnxruntime_version() is None:
        raise ConfigError("--nms/--int8 need onnx and onnxruntime: pip install onnx onnxruntime")
    if args.output:
        check_output_file(args.output, "--output")
    model, cfg = load_model(args.weights, "cpu", flags_given(args))
    name = f"ssd{cfg.model.size}" + (".detector" if args.graph_nms else "") + (".int8" if args.int8 else "") + ".onnx"
    output = args.output or os.path.join(os.path.dirname(os.path.abspath(args.weights)), name)
    check_output_file(output, "--output")
    images = calibration_images(args.calibration_images, args.calibration_count) if args.int8 else None
    if args.int8:
        fp32 = output + ".fp32.tmp"
        try:
            export_onnx(model, cfg, fp32, nms=True)
            quantize_int8(fp32, output, images, cfg.model.size)
        finally:
            if os.path.exists(fp32):
                os.remove(fp32)
    else:
        export_onnx(model, cfg, output, nms=args.graph_nms)
    if args.graph_nms:
        print(f"wrote {output} ({'INT8, calibrated on ' + str(len(images)) + ' images' if args.int8 else 'fp32'}; "
              f"input uint8 [B, 3, {cfg.model.size}, {cfg.model.size}] BGR; outputs boxes, scores, labels, counts); "
              f"run it: "
              f"python eval.py --weights {output}")
    else:
        print(f"wrote {output} (input uint8 [B, 3, {cfg.model.size}, {cfg.model.size}] BGR; outputs boxes, scores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
