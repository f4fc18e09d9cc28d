"""The backbones side by side: parameters, FLOPs per image (one forward, counted by torch's FlopCounterMode),
inference images/s end to end (network + post-processing; untrained weights, the worst case for NMS) and training
images/s (forward, loss, backward, SGD), with torchvision's ssd300_vgg16 and ssdlite320_mobilenet_v3_large (their
own pre- and post-processing) in the same process where they exist.

    python -m benchmarks.bench_backbones [--batch-size 2] [--steps 3] [--device cpu|cuda] [--amp bf16]
"""
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import device_name, seconds_per_call, step_parser
from config_resolve import config_for
from engine import Detector
from layers import MultiBoxLoss
from models import BACKBONES, build_model
from utils.distributed import resolve_device

TORCHVISION = {"vgg16": torchvision.models.detection.ssd300_vgg16,
               "mobilenet_v3": torchvision.models.detection.ssdlite320_mobilenet_v3_large}


def main():
    args = step_parser(__doc__, 2).parse_args()
    device = resolve_device(args.device)
    amp = dict(device_type=device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16")
    print(f"\nBackbones, batch {args.batch_size}, amp {args.amp}, {device_name(device)} (untrained weights)")
    print("| model | input | parameters (M) | GFLOPs per image | inference img/s | training img/s | "
          "torchvision's, inference img/s |\n|---|---|---|---|---|---|---|")
    generator = torch.Generator().manual_seed(0)
    for backbone in BACKBONES:
        cfg = config_for("VOC", backbone=backbone, basenet="none", pixel_format="torchvision")
        model = build_model(cfg).to(device)
        size = cfg.model.size
        images = torch.randint(0, 255, (args.batch_size, 3, size, size), dtype=torch.uint8, generator=generator)
        images = images.to(device)
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(images[:1])
        flops = counter.get_total_flops() / 2 / 1e9  # multiply-adds counted as 2
        detector = Detector(model, amp=args.amp)  # network + post-processing, as eval.py and detect.py
        infer = seconds_per_call(lambda: detector(images), args.steps, args.warmup, device)
        model.train()
        criterion = MultiBoxLoss.from_config(cfg, model.box_coder)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        targets = [torch.tensor([[0.1, 0.1, 0.5, 0.6, 3.0]], device=device)] * args.batch_size

        def step():
            with torch.autocast(**amp):
                loc, conf = model(images)
            terms = criterion((loc, conf), targets)
            optimizer.zero_grad(set_to_none=True)
            sum(terms.values()).backward()
            optimizer.step()
        trainer = seconds_per_call(step, args.steps, args.warmup, device)
        theirs = "-"
        if backbone in TORCHVISION and not args.skip_torchvision:
            reference = TORCHVISION[backbone](weights=None, weights_backbone=None, num_classes=21).to(device).eval()
            batch = [image.float() / 255 for image in images]
            with torch.no_grad(), torch.autocast(**amp):
                seconds = seconds_per_call(lambda: reference(batch), args.steps, args.warmup, device)
            theirs = f"{args.batch_size / seconds:.1f}"
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"| {backbone} SSD{size} | {size}x{size} | {params:.1f} | {flops:.1f} | "
              f"{args.batch_size / infer:.1f} | {args.batch_size / trainer:.1f} | {theirs} |")


if __name__ == "__main__":
    main()
