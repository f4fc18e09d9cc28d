"""Scan a dataset before spending GPU hours on it, through the very code train.py and eval.py use:

    python -m data.check --dataset VOC --dataset-root DIR --sets trainval --class-names A B C
    python -m data.check --dataset VOC --dataset-root DIR --test-sets test --split test --class-names A B C

`--split train` (default) reads --sets as train.py does (images without any object of --class-names skipped, counted;
--no-train-difficult honoured); `--split test` reads --test-sets as eval.py does (every listed image kept). Prints
images, objects per class (difficult in brackets), what was dropped and why (a count per kind, then every file),
and decodes every image to find unreadable or truncated files, size mismatches with the XML and transparent
images. Then the prior coverage of the model the flags choose (--backbone, --size, --min-sizes): the share of the
boxes whose best prior reaches --overlap-thresh with its layout and with priors fitted to these boxes (what
train.py --priors auto trains with), per class and per size. Exit status 1 when it finds a problem.
"""
import logging
import sys
from collections import Counter

from tqdm import tqdm

from config import FILE_CLASSES, config_for, resolve
from utils.cli import Parser, add_flags, chosen_dataset, entry_point, flags_given

from . import build_source
from .images import decode_image, jpeg_truncated


def check(source, decode: bool = True, use_difficult: bool = True):
    """-> (report lines, number of problems, indices of the unreadable images). `use_difficult`: whether the run
    would learn from difficult objects."""
    problems, notices = list(source.problems), list(getattr(source, "notices", []))
    objects, hard, empty, alpha, turned, unreadable = Counter(), Counter(), 0, 0, 0, []
    sizes = Counter()
    for i in tqdm(range(len(source)), desc=f"checking {source.name}", disable=not sys.stderr.isatty()):
        boxes, labels, difficult = source.annotation(i)
        if decode and hasattr(source, "table"):
            try:
                image, had_alpha, orientation = decode_image(source.image_path(i))
            except ValueError as exc:
                problems.append(f"{exc} (training replaces it with another image; eval.py stops on it, or scores "
                                f"it as a miss with --unreadable miss)")
                unreadable.append(i)
                continue
            alpha += had_alpha
            turned += orientation != 1
            if jpeg_truncated(source.image_path(i)):
                problems.append(f"{source.image_path(i)}: truncated JPEG (no end marker): training and evaluation "
                                f"read it as far as it decodes; re-export or remove it")
            h, w = image.shape[:2]
            sizes[(w, h)] += 1
            annotated = source.image_size(i)  # (height, width)
            if annotated[0] and annotated != (h, w):
                notices.append(f"{source.image_path(i)}: image is {w}x{h} but its annotation says "
                               f"{annotated[1]}x{annotated[0]}; boxes are clipped to the image")
        if len(labels) == 0:
            empty += 1
        used = labels if use_difficult else labels[~difficult]
        objects.update(used.tolist())
        hard.update(labels[difficult].tolist())
    layout = getattr(source, "layout", None)
    told = [f"layout: {source.root}: {layout.describe(source.root)}"] if layout else []
    lines = [f"dataset: {source.name}", *told,
             f"images: {len(source) - len(unreadable)} readable ({empty} without objects)"
             + (f", {len(unreadable)} unreadable (their objects not counted below)" if unreadable else ""),
             f"objects used: {sum(objects.values())}" + ("" if use_difficult else " (difficult ones excluded)")]
    width = max(len(n) for n in source.class_names) if source.class_names else 5
    for label, name in enumerate(source.class_names):
        lines.append(f"  {name:<{width}} {objects[label]:>7}" + (f"  ({hard[label]} difficult)" if hard[label] else ""))
    missing = [n for label, n in enumerate(source.class_names) if objects[label] == 0]
    if missing:
        found = getattr(source, "names_found", Counter())
        problems.append(f"{source.name}: no object at all of class(es) {missing}; the annotations name: "
                        + (", ".join(f"{n} ({c})" for n, c in found.most_common()) or "nothing"))
    if sizes:
        common = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(3))
        lines.append(f"image sizes: {common}")
    if alpha:
        lines.append(f"transparent images: {alpha} (composited on white, as a viewer shows them)")
    if turned:
        lines.append(f"photos with an EXIF orientation: {turned} (turned the way up viewers and annotation tools show "
                     f"them, for training, evaluation and detect.py alike)")
    summary = source.problems.summary()
    if summary:
        lines.append("dropped or changed while reading:")
        lines += [f"  {line}" for line in summary]
    lines.append(f"notices: {len(notices)}")
    lines += [f"  {n}" for n in notices]
    lines.append(f"problems: {len(problems)}")
    lines += [f"  {p}" for p in problems]
    return lines, len(problems), unreadable


@entry_point
def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = Parser(__doc__)
    add_flags(parser, ("dataset", "dataset_root", "sets", "test_sets", "class_names", "train_difficult", "backbone",
                       "size", "min_sizes", "overlap_thresh", "shapes_train_images", "shapes_test_images"),
              config_for(chosen_dataset(argv, "VOC")), shown={"size": "the backbone's first"})
    parser.add_argument("--split", choices=["train", "test"], default="train",
                        help="read --sets as train.py does, or --test-sets as eval.py does (default: train)")
    parser.add_argument("--no-decode", action="store_true", help="check annotations only, skip image decoding")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(message)s")
    cfg = resolve(flags_given(args))
    source = build_source(cfg, train=args.split == "train")
    use_difficult = cfg.train_difficult if args.split == "train" else True
    lines, count, unreadable = check(source, decode=not args.no_decode, use_difficult=use_difficult)
    print("\n".join(lines))
    print("\n".join(prior_coverage(cfg, source, use_difficult, unreadable)))
    return 1 if count else 0


def prior_coverage(cfg, source, use_difficult: bool, unreadable=()) -> list:
    """The coverage line train.py prints, the table per class and size, and what to do about it."""
    from engine.priors import coverage_line, coverage_table, describe_layout, finer_layouts, prior_report

    if cfg.dataset in FILE_CLASSES:
        cfg = cfg.replace(class_names=tuple(source.class_names))
    report = prior_report(cfg, source, use_difficult, unreadable)
    lines = [coverage_line(cfg, report)] + coverage_table(cfg, report, source.class_names)
    if report.fit.kind != "layout" and report.fitted.covered > report.layout.covered:
        sizes = " ".join(f"{v:g}" for v in report.fit.layout["min_sizes"])
        lines.append(f"fitted priors: {describe_layout(report.fit.layout)}; train.py trains with them for your own "
                     f"classes (--priors auto, the default; --priors fit for VOC's and COCO's classes; by hand: "
                     f"--min-sizes {sizes}), and the checkpoint carries them")
    lines += finer_layouts(cfg, report, source.class_names)
    return lines


if __name__ == "__main__":
    sys.exit(main())
