"""Write the built-in shapes dataset out as a VOC-style folder, so the VOC loader path runs on it too.

    python -m scripts.make_shapes_voc --output data/shapes_voc --train 2000 --test 200
    python train.py --dataset VOC --dataset-root data/shapes_voc --sets trainval --test-sets test \
        --labels ellipse rectangle triangle star cross --basenet none --batch-norm
"""
import argparse
import os

import cv2

from config import SHAPES_CLASSES
from data.shapes import generate
from utils.voc_eval import to_devkit


def write_split(folder: str, split: str, set_name: str, count: int, seed: int):
    ids = []
    for index in range(count):
        image, boxes, labels = generate(seed, split, index)
        image_id = f"{split}_{index:06d}"
        cv2.imwrite(os.path.join(folder, "JPEGImages", f"{image_id}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        height, width = image.shape[:2]
        objects = "".join(
            f"<object><name>{SHAPES_CLASSES[label]}</name><difficult>0</difficult><bndbox>"
            f"<xmin>{x1:g}</xmin><ymin>{y1:g}</ymin><xmax>{x2:g}</xmax><ymax>{y2:g}</ymax>"
            f"</bndbox></object>" for (x1, y1, x2, y2), label in zip(to_devkit(boxes).tolist(), labels.tolist()))
        with open(os.path.join(folder, "Annotations", f"{image_id}.xml"), "w") as f:
            f.write(f"<annotation><filename>{image_id}.jpg</filename><size><width>{width}</width>"
                    f"<height>{height}</height><depth>3</depth></size>{objects}</annotation>\n")
        ids.append(image_id)
    with open(os.path.join(folder, "ImageSets", "Main", f"{set_name}.txt"), "w") as f:
        f.write("\n".join(ids) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="data/shapes_voc")
    parser.add_argument("--train", type=int, default=2000, help="images in trainval")
    parser.add_argument("--test", type=int, default=200, help="images in test")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        os.makedirs(os.path.join(args.output, sub), exist_ok=True)
    write_split(args.output, "train", "trainval", args.train, args.seed)
    write_split(args.output, "test", "test", args.test, 0)
    print(f"wrote {args.train} + {args.test} images to {args.output}")


if __name__ == "__main__":
    main()
