"""Scan a dataset before spending GPU hours on it, through the very code train.py and eval.py use:

    python -m scripts.check_data --dataset VOC --dataset-root DIR --sets trainval --class-names A B C
    python -m scripts.check_data --dataset VOC --dataset-root DIR --test-sets test --split test --class-names A B C

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
from dataclasses import dataclass, field

from tqdm import tqdm

from config import FILE_CLASSES
from config_flags import add_flags, chosen_dataset, flags_given
from config_resolve import config_for, resolve
from data import build_source
from data.images import decode_image, jpeg_truncated
from utils.cli import Parser, entry_point


@dataclass
class Scan:
    """What reading every image and annotation of a source found."""
    problems: list
    notices: list
    objects: Counter = field(default_factory=Counter)  # label -> objects the run would learn from
    hard: Counter = field(default_factory=Counter)  # label -> difficult objects
    sizes: Counter = field(default_factory=Counter)  # (width, height) -> images
    empty: int = 0
    alpha: int = 0
    turned: int = 0
    unreadable: list = field(default_factory=list)


def scan(source, decode: bool, use_difficult: bool) -> Scan:
    found = Scan(list(source.problems), list(source.notices))
    for i in tqdm(range(len(source)), desc=f"checking {source.name}", disable=not sys.stderr.isatty()):
        boxes, labels, difficult = source.annotation(i)
        if decode and source.table is not None and not decoded(source, i, found):
            found.unreadable.append(i)
            continue
        found.empty += len(labels) == 0
        found.objects.update((labels if use_difficult else labels[~difficult]).tolist())
        found.hard.update(labels[difficult].tolist())
    return found


def decoded(source, i: int, found: Scan) -> bool:
    """Decode image i as training does, noting what it finds; False when it cannot be decoded."""
    path = source.image_path(i)
    try:
        image, had_alpha, orientation = decode_image(path)
    except ValueError as exc:
        found.problems.append(f"{exc} (training replaces it with another image; eval.py stops on it, or scores "
                              f"it as a miss with --unreadable miss)")
        return False
    found.alpha += had_alpha
    found.turned += orientation != 1
    if jpeg_truncated(path):
        found.problems.append(f"{path}: truncated JPEG (no end marker): training and evaluation read it as far as "
                              f"it decodes; re-export or remove it")
    h, w = image.shape[:2]
    found.sizes[(w, h)] += 1
    annotated = source.image_size(i)  # (height, width)
    if annotated[0] and annotated != (h, w):
        found.notices.append(f"{path}: image is {w}x{h} but its annotation says {annotated[1]}x{annotated[0]}; "
                             f"boxes are clipped to the image")
    return True


def check(source, decode: bool = True, use_difficult: bool = True):
    """-> (report lines, number of problems, indices of the unreadable images). `use_difficult`: whether the run
    would learn from difficult objects."""
    found = scan(source, decode, use_difficult)
    objects, hard, problems, unreadable = found.objects, found.hard, found.problems, found.unreadable
    told = [f"layout: {source.root}: {source.layout.describe(source.root)}"] if source.layout else []
    lines = [f"dataset: {source.name}", *told,
             f"images: {len(source) - len(unreadable)} readable ({found.empty} without objects)"
             + (f", {len(unreadable)} unreadable (their objects not counted below)" if unreadable else ""),
             f"objects used: {sum(objects.values())}" + ("" if use_difficult else " (difficult ones excluded)")]
    width = max(len(n) for n in source.class_names) if source.class_names else 5
    for label, name in enumerate(source.class_names):
        lines.append(f"  {name:<{width}} {objects[label]:>7}" + (f"  ({hard[label]} difficult)" if hard[label] else ""))
    missing = [n for label, n in enumerate(source.class_names) if objects[label] == 0]
    if missing:
        names = source.names_found
        problems.append(f"{source.name}: no object at all of class(es) {missing}; the annotations name: "
                        + (", ".join(f"{n} ({c})" for n, c in names.most_common()) or "nothing"))
    if found.sizes:
        lines.append("image sizes: " + ", ".join(f"{w}x{h} ({n})" for (w, h), n in found.sizes.most_common(3)))
    if found.alpha:
        lines.append(f"transparent images: {found.alpha} (composited on white, as a viewer shows them)")
    if found.turned:
        lines.append(f"photos with an EXIF orientation: {found.turned} (turned the way up viewers and annotation "
                     f"tools show them, for training, evaluation and detect.py alike)")
    summary = source.problems.summary()
    if summary:
        lines += ["dropped or changed while reading:", *[f"  {line}" for line in summary]]
    lines += [f"notices: {len(found.notices)}", *[f"  {n}" for n in found.notices]]
    lines += [f"problems: {len(problems)}", *[f"  {p}" for p in problems]]
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
    use_difficult = cfg.data.train_difficult if args.split == "train" else True
    lines, count, unreadable = check(source, decode=not args.no_decode, use_difficult=use_difficult)
    print("\n".join(lines))
    print("\n".join(prior_coverage(cfg, source, use_difficult, unreadable)))
    return 1 if count else 0


def prior_coverage(cfg, source, use_difficult: bool, unreadable=()) -> list:
    """The coverage line train.py prints, the table per class and size, and what to do about it."""
    from engine.priors import coverage_line, coverage_table, describe_layout, finer_layouts, prior_report

    if cfg.data.dataset in FILE_CLASSES:
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
