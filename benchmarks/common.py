"""What the benchmarks share: their command line, device set-up, timing sync and a VOC-sized test folder."""
import argparse
import os
import platform
import statistics
import time

import cv2
import numpy as np
import torch

from data.voc import write_voc_folder
from engine.detector import cpu_has_native_bf16, synchronize
from utils.distributed import usable_cores


def step_parser(doc: str, batch_size: int, several_precisions: bool = False) -> argparse.ArgumentParser:
    """The benchmarks' shared flags; `several_precisions`: --amp takes a list, each measured in turn."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    if several_precisions:
        parser.add_argument("--amp", nargs="+", choices=["off", "bf16", "fp16"], default=["off"],
                            help="the precisions to measure, one after the other (default: off, float32)")
    else:
        parser.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-torchvision", action="store_true")
    return parser


def device_name(device: torch.device = None) -> str:
    """The GPU's name (of `device`, else the first), or the CPU's model name and the cores this process may use."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        model = names[0] if names else model
    return f"CPU: {model}, {usable_cores()} cores{', native bfloat16' if cpu_has_native_bf16() else ''}"


def seconds_per_call(fn, steps: int, warmup: int, device: torch.device) -> float:
    """The median seconds of `steps` calls of `fn` after `warmup` calls, the device synchronised around each."""
    times = []
    for index in range(warmup + steps):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_random_voc_folder(folder: str, count: int, class_names=("cat",), set_name: str = "trainval",
                            seed: int = 0):
    """A VOC-style folder of `count` VOC-sized (500x375) JPEGs with 1-5 random boxes of random `class_names`,
    listed in ImageSets/Main/<set_name>.txt."""
    rng = np.random.default_rng(seed)
    images = {}
    for i in range(count):
        image = cv2.GaussianBlur(rng.integers(0, 255, (375, 500, 3), dtype=np.uint8), (0, 0), 3)
        objects = []
        for _ in range(rng.integers(1, 6)):
            x1, y1 = int(rng.integers(1, 350)), int(rng.integers(1, 250))
            objects.append((class_names[rng.integers(len(class_names))], x1, y1, x1 + int(rng.integers(20, 150)),
                            y1 + int(rng.integers(20, 125))))
        images[f"{i:06d}"] = (image, objects)
    write_voc_folder(folder, images, {set_name: list(images)}, quality=90)
