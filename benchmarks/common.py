"""What the benchmarks share: their command line, device set-up, timing sync and a VOC-sized test folder."""
import argparse
import os

import cv2
import numpy as np
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


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"


def sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def write_voc_folder(folder: str, count: int, class_names=("cat",), set_name: str = "trainval", seed: int = 0):
    """A VOC-style folder of `count` VOC-sized (500x375) JPEGs with 1-5 random boxes of random `class_names`,
    listed in ImageSets/Main/<set_name>.txt."""
    rng = np.random.default_rng(seed)
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    ids = [f"{i:06d}" for i in range(count)]
    for image_id in ids:
        image = cv2.GaussianBlur(rng.integers(0, 255, (375, 500, 3), dtype=np.uint8), (0, 0), 3)
        cv2.imwrite(os.path.join(folder, "JPEGImages", f"{image_id}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        objects = []
        for _ in range(rng.integers(1, 6)):
            x1, y1 = rng.integers(1, 350), rng.integers(1, 250)
            objects.append(f"<object><name>{class_names[rng.integers(len(class_names))]}</name><difficult>0"
                           f"</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
                           f"<xmax>{x1 + rng.integers(20, 150)}</xmax><ymax>{y1 + rng.integers(20, 125)}</ymax>"
                           f"</bndbox></object>")
        with open(os.path.join(folder, "Annotations", f"{image_id}.xml"), "w") as f:
            f.write("<annotation><size><width>500</width><height>375</height></size>" + "".join(objects) +
                    "</annotation>")
    with open(os.path.join(folder, "ImageSets", "Main", f"{set_name}.txt"), "w") as f:
        f.write("\n".join(ids))
