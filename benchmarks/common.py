"""What the GPU/CPU step benchmarks share: their command line, device set-up and timing sync."""
import argparse
import os

import torch


def step_parser(doc: str, batch_size: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-torchvision", action="store_true")
    return parser


def setup_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"


def sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()
