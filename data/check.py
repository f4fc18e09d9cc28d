"""Scan a dataset before spending GPU hours on it: `python -m data.check --dataset VOC --dataset-root R --sets S`.

Prints images, objects per class (difficult in brackets), annotation problems, and decodes every image to find
corrupt or unreadable files and size mismatches. Exit status 1 when it finds anything.
"""
import argparse
import logging
import sys
from collections import Counter

from tqdm import tqdm

from config import config_for

from . import build_source
from .common import DatasetError, read_image


def check(source, decode: bool = True):
    """-> (report lines, number of problems)."""
    problems = list(source.problems)
    objects, hard, empty = Counter(), Counter(), 0
    sizes = Counter()
    for i in tqdm(range(len(source)), desc=f"checking {source.name}", disable=not sys.stderr.isatty()):
        boxes, labels, difficult = source.annotation(i)
        if len(labels) == 0:
            empty += 1
        objects.update(labels.tolist())
        hard.update(labels[difficult].tolist())
        if decode and hasattr(source, "records"):
            record = source.records[i]
            try:
                image = read_image(record.image_path)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            h, w = image.shape[:2]
            sizes[(w, h)] += 1
            if record.width and (record.width, record.height) != (w, h):
                problems.append(f"{record.image_path}: image is {w}x{h} but its annotation says "
                                f"{record.width}x{record.height}; boxes are clipped to the image")
    lines = [f"dataset: {source.name}", f"images: {len(source)} ({empty} without objects)",
             f"objects: {sum(objects.values())}"]
    width = max(len(n) for n in source.class_names)
    for label, name in enumerate(source.class_names):
        lines.append(f"  {name:<{width}} {objects[label]:>7}" + (f"  ({hard[label]} difficult)" if hard[label] else ""))
    missing = [n for label, n in enumerate(source.class_names) if objects[label] == 0]
    if missing:
        problems.append(f"{source.name}: no object at all of class(es) {missing}")
    if sizes:
        common = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(3))
        lines.append(f"image sizes: {common}")
    lines.append(f"problems: {len(problems)}")
    lines += [f"  {p}" for p in problems]
    return lines, len(problems)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="VOC", choices=["VOC", "COCO", "shapes"])
    parser.add_argument("--dataset-root")
    parser.add_argument("--sets", nargs="+", help="image sets, e.g. 2007:trainval 2012:trainval, or trainval")
    parser.add_argument("--labels", nargs="+", help="class names of a custom VOC-style dataset")
    parser.add_argument("--no-decode", action="store_true", help="check annotations only, skip image decoding")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(message)s")
    cfg = config_for(args.dataset, dataset_root=args.dataset_root, sets=args.sets, labels=args.labels)
    try:
        source = build_source(cfg, train=True)
    except DatasetError as exc:
        print(f"error: {exc}")
        return 1
    lines, count = check(source, decode=not args.no_decode)
    print("\n".join(lines))
    return 1 if count else 0


if __name__ == "__main__":
    sys.exit(main())
