"""One training step (forward, matching + loss, backward, SGD) of ours beside torchvision's model of the same
architecture, in the same run, at each precision asked for: SSD300 (VGG16) beside ssd300_vgg16, SSDLite320
(MobileNetV3-Large) and EfficientNet-Lite0 SSDLite320 beside ssdlite320_mobilenet_v3_large.

    python -m benchmarks.bench_train_step [--arch vgg16 mobilenet_v3] [--amp off bf16] [--batch-size 32]
        [--steps 10] [--channels-last] [--json FILE]

Prints images/s for the full step, ours's time split into network (forward + backward, optimizer) and matching +
loss, each precision's speed-up over float32 and ours over torchvision at equal precision; `--json` writes the
printed tables as a record (benchmarks/record.py's format). On a CPU use small batches (e.g. --batch-size 4
for SSD300, 16 for SSDLite, --steps 4 --warmup 1).
"""
import statistics
import sys
import time

import torch
import torchvision

from benchmarks.common import device_name, step_parser
from benchmarks.record import write_record
from config_resolve import config_for
from engine.detector import autocast, synchronize
from engine.trainer import PRECISION_NAMES
from layers import MultiBoxLoss
from models import build_model
from utils.distributed import resolve_device

ARCHS = {"vgg16": dict(ours=dict(), torchvision="ssd300_vgg16", title="SSD300"),
         "mobilenet_v3": dict(ours=dict(backbone="mobilenet_v3", basenet="none"),
                              torchvision="ssdlite320_mobilenet_v3_large", title="SSDLite320"),
         "efficientnet_lite0": dict(ours=dict(backbone="efficientnet_lite0", basenet="none"),
                                    torchvision="ssdlite320_mobilenet_v3_large", title="EfficientNet-Lite0 SSDLite320")}
NUM_CLASSES = 21  # VOC's 20 and the background


def random_targets(batch, device, generator):
    targets = []
    for _ in range(batch):
        n = int(torch.randint(1, 8, (1,), generator=generator))
        xy = torch.rand(n, 2, generator=generator) * 0.7
        wh = torch.rand(n, 2, generator=generator) * 0.3 + 0.02
        labels = torch.randint(0, 20, (n, 1), generator=generator).float()
        targets.append(torch.cat([xy, xy + wh, labels], 1).to(device))
    return targets


def ours_step(arch: str, amp: str, channels_last: bool, device, images, targets):
    """-> a function running one training step of ours and returning (network s, matching + loss s)."""
    cfg = config_for("VOC", **ARCHS[arch]["ours"])
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    criterion = MultiBoxLoss.from_config(cfg, model.box_coder)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step():
        synchronize(device)
        t0 = time.perf_counter()
        with autocast(device, amp):
            loc, conf = model(images)
        synchronize(device)
        t1 = time.perf_counter()
        terms = criterion((loc, conf), targets)
        synchronize(device)
        t2 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        optimizer.step()
        synchronize(device)
        return (t1 - t0) + (time.perf_counter() - t2), t2 - t1
    return step


def torchvision_step(arch: str, amp: str, channels_last: bool, device, images, targets):
    """-> a function running one training step of torchvision's model (its transform, loss and all) and
    returning its seconds."""
    build = getattr(torchvision.models.detection, ARCHS[arch]["torchvision"])
    torch.manual_seed(0)
    model = build(weights=None, weights_backbone=None, num_classes=NUM_CLASSES).to(device).train()
    if channels_last:  # its convolutions in the same memory format as ours (its transform makes NCHW batches)
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    size = images.shape[-1]
    tv_images = [img.float() / 255 for img in images]
    tv_targets = [dict(boxes=t[:, :4] * size, labels=t[:, 4].long() + 1) for t in targets]

    def step():
        synchronize(device)
        t0 = time.perf_counter()
        with autocast(device, amp):
            losses = model(tv_images, tv_targets)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()
        synchronize(device)
        return time.perf_counter() - t0
    return step


def bench_torchvision(args, device, images, targets) -> float:
    """Median seconds of torchvision's ssd300_vgg16 training step at args.amp (benchmarks/bench_train.py)."""
    step = torchvision_step("vgg16", args.amp, args.channels_last, device, images, targets)
    times = [step() for _ in range(args.warmup + args.steps)][args.warmup:]
    return statistics.median(times)


def measure(args, arch: str, amp: str, device) -> dict:
    """Ours and torchvision's steps alternated, step by step, so that a machine's drift (clock, other load) hits
    both alike -> medians: {"ours": (network s, loss s), "torchvision": s or None}."""
    generator = torch.Generator().manual_seed(0)
    size = config_for("VOC", **ARCHS[arch]["ours"]).model.size
    images = torch.randint(0, 255, (args.batch_size, 3, size, size), dtype=torch.uint8, generator=generator)
    images = images.to(device)
    targets = random_targets(args.batch_size, device, generator)
    ours = ours_step(arch, amp, args.channels_last, device, images, targets)
    theirs = None if args.skip_torchvision else torchvision_step(arch, amp, args.channels_last, device, images,
                                                                 targets)
    ours_times, their_times = [], []
    for index in range(args.warmup + args.steps):
        measured = ours()
        other = theirs() if theirs else None
        if index >= args.warmup:
            ours_times.append(measured)
            their_times.append(other)
    return {"ours": (statistics.median(t[0] for t in ours_times), statistics.median(t[1] for t in ours_times)),
            "torchvision": statistics.median(their_times) if theirs else None}


def table(args, arch: str, results: dict) -> str:
    """One row per model and precision: step ms, img/s, ours's split, the speed-up over float32 (the first
    precision when float32 was not measured) and ours / torchvision at that precision."""
    lines = ["| model | precision | step ms | img/s | network ms | matching+loss ms | vs float32 | "
             "ours / torchvision |", "|---|---|---|---|---|---|---|---|"]
    base = results.get("off", next(iter(results.values())))
    base_ours, base_tv = sum(base["ours"]), base["torchvision"]
    for amp, result in results.items():
        net, loss = result["ours"]
        ours, tv = net + loss, result["torchvision"]
        ratio = f"{tv / ours:.2f}x" if tv else "-"
        lines.append(f"| ours {ARCHS[arch]['title']} | {PRECISION_NAMES[amp].split(',')[0]} | {ours * 1e3:.1f} | "
                     f"{args.batch_size / ours:.2f} | {net * 1e3:.1f} | {loss * 1e3:.1f} | {base_ours / ours:.2f}x | "
                     f"{ratio} |")
        if tv:
            lines.append(f"| torchvision {ARCHS[arch]['torchvision']} | {PRECISION_NAMES[amp].split(',')[0]} | "
                         f"{tv * 1e3:.1f} | {args.batch_size / tv:.2f} | - | - | {base_tv / tv:.2f}x | |")
    return "\n".join(lines)


def main():
    parser = step_parser(__doc__, 32, several_precisions=True)
    parser.add_argument("--arch", nargs="+", choices=sorted(ARCHS), default=["vgg16"])
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's, the cores)")
    parser.add_argument("--json", help="write the tables as a record (benchmarks/record.py's format)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    text = []
    for arch in args.arch:
        results = {amp: measure(args, arch, amp, device) for amp in args.amp}
        title = (f"{ARCHS[arch]['title']} training step, batch {args.batch_size}, channels-last "
                 f"{args.channels_last}, {device_name(device)}, {torch.get_num_threads()} thread(s); medians of "
                 f"{args.steps} alternating steps after {args.warmup}")
        text += ["", title, table(args, arch, results)]
    print("\n".join(text))
    if args.json:
        write_record(args.json, "\n".join(text), "train-step",
                     ["python -m benchmarks.bench_train_step " + " ".join(sys.argv[1:])])


if __name__ == "__main__":
    main()
