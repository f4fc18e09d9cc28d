"""Post-processing alone (softmax, decode, per-class top-k, NMS, top-k per image) on SSD300 outputs: ours (the
exact path of the device: sorted greedy NMS on a CPU, fixed-shape NMS on CUDA), ours in fixed shapes, and
torchvision's `SSD.postprocess_detections` with the same settings, in the same process, on two kinds of input:
random logits (every one of the 8732 x 20 scores passes 0.01: what an untrained model gives) and trained-like
logits (a confident background, about a thousand candidates per image).

    python -m benchmarks.bench_postprocess [--batch-size 8] [--steps 5] [--device cpu|cuda]
"""

import torch
import torchvision
from torchvision.models.detection import ssd300_vgg16

from benchmarks.common import device_name, seconds_per_call, step_parser
from config_resolve import config_for
from layers import PostProcessor, cxcywh_to_xyxy
from models import VGGSSD
from utils.distributed import resolve_device


def inputs(kind: str, batch: int, priors: int, device, generator):
    loc = torch.randn(batch, priors, 4, generator=generator) * 0.5
    conf = torch.randn(batch, priors, 21, generator=generator) * 2
    if kind == "trained-like":
        conf[..., 0] += 11.5  # background wins almost everywhere: about 1.2k (prior, class) scores above 0.01 per image
    return loc.to(device), conf.to(device)


def main():
    parser = step_parser(__doc__, 8)
    args = parser.parse_args()
    device = resolve_device(args.device)
    cfg = config_for("VOC")
    model = VGGSSD.from_config(cfg).to(device)
    ours = PostProcessor.from_config(cfg, model.box_coder)
    reference = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=21).to(device)
    anchors = [cxcywh_to_xyxy(model.priors) * 300] * args.batch_size
    generator = torch.Generator().manual_seed(0)
    print(f"\nSSD300 post-processing, batch {args.batch_size}, score >= 0.01, top 400 per class, NMS 0.45, top 200 "
          f"per image; {device_name(device)}, torchvision {torchvision.__version__}")
    print("| input | candidates per image | ours ms | ours, fixed shapes ms | torchvision ms | ours / torchvision |\n"
          "|---|---|---|---|---|---|")
    sizes = [(300, 300)] * args.batch_size
    for kind in ("random", "trained-like"):
        loc, conf = inputs(kind, args.batch_size, len(model.priors), device, generator)
        head = {"bbox_regression": loc, "cls_logits": conf}
        candidates = (conf.softmax(-1)[..., 1:] >= 0.01).sum().item() / args.batch_size
        runs = {"ours": lambda: ours(loc, conf), "fixed": lambda: ours.padded(loc, conf, nms_rounds=400),
                "torchvision": lambda: reference.postprocess_detections(head, anchors, sizes)}
        ours_ms, fixed_ms, tv_ms = (seconds_per_call(run, args.steps, args.warmup, device) * 1e3
                                    for run in runs.values())
        print(f"| {kind} | {candidates:.0f} | {ours_ms:.1f} | {fixed_ms:.1f} | {tv_ms:.1f} | "
              f"{tv_ms / ours_ms:.2f}x faster |")


if __name__ == "__main__":
    with torch.no_grad():
        main()
