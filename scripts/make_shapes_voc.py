"""Write the built-in shapes dataset out as a VOC-style folder, so the VOC loader path runs on it too.

    python -m scripts.make_shapes_voc --output data/shapes_voc --train 2000 --test 200
    python train.py --dataset VOC --dataset-root data/shapes_voc --sets trainval --test-sets test \
        --class-names ellipse rectangle triangle star cross --basenet none --batch-norm
"""
import argparse

from config import SHAPES_CLASSES
from data.shapes import generate
from data.voc import write_voc_folder
from utils.voc_eval import to_devkit


def shapes_images(split: str, count: int, seed: int) -> dict:
    images = {}
    for index in range(count):
        image, boxes, labels = generate(seed, split, index)
        images[f"{split}_{index:06d}"] = (image, [(SHAPES_CLASSES[label], *box) for box, label in
                                                  zip(to_devkit(boxes).tolist(), labels.tolist())])
    return images


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="data/shapes_voc")
    parser.add_argument("--train", type=int, default=2000, help="images in trainval")
    parser.add_argument("--test", type=int, default=200, help="images in test")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    train, test = shapes_images("train", args.train, args.seed), shapes_images("test", args.test, 0)
    write_voc_folder(args.output, {**train, **test}, {"trainval": list(train), "test": list(test)})
    print(f"wrote {args.train} + {args.test} images to {args.output}")


if __name__ == "__main__":
    main()
