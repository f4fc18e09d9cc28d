"""Datasets, augmentation and loading. `build_source(cfg, train=...)` is the one place a config becomes data."""
import os

from config import PIXEL_FORMATS

from .coco import COCOSource
from .common import PHOTO_EXTENSIONS, DatasetError, decode_image, image_files, read_image
from .loader import Batch, Sample, SSDDataset, as_model_input, collate, eval_loader, train_loader
from .shapes import ShapesDataset
from .transforms import ResizeTransform, SSDAugmentation
from .voc import VOCSource, is_devkit, single_folder_sets


def build_source(cfg, train: bool):
    """The dataset source (images + annotations) for cfg.sets (train) or cfg.test_sets (evaluation)."""
    sets = cfg.sets if train else cfg.test_sets
    if cfg.dataset == "shapes":
        split = sets[0] if sets else ("train" if train else "test")
        count = cfg.shapes_train_images if split == "train" else cfg.shapes_test_images
        return ShapesDataset(split, count, seed=cfg.seed if split == "train" else 0)
    if cfg.dataset == "VOC":
        root = os.path.expanduser(cfg.dataset_root)
        if os.path.isdir(root) and not is_devkit(root):
            sets = single_folder_sets(root, sets, "--sets" if train else "--test-sets")
        return VOCSource(root, sets, cfg.labels, skip_empty=train)
    if cfg.dataset == "COCO":
        return COCOSource(cfg.dataset_root, sets, cfg.labels, skip_empty=train)
    raise DatasetError(f"unknown dataset {cfg.dataset!r}: use VOC, COCO or shapes")


def build_dataset(cfg, train: bool, source=None):
    source = build_source(cfg, train) if source is None else source
    if train and cfg.augment:
        spec = PIXEL_FORMATS[cfg.pixel_format]
        mean_bgr = spec["mean"][::-1] if spec["rgb"] else spec["mean"]
        transform = SSDAugmentation(cfg.size, mean_bgr, cfg.expand_max_ratio, cfg.photometric)
    else:
        transform = ResizeTransform(cfg.size)
    return SSDDataset(source, transform, use_difficult=cfg.train_difficult if train else True, substitute=train)


def objects_for_training(source, use_difficult: bool) -> int:
    """Objects of the label list a training run would learn from (file-backed sources; shapes always has some)."""
    table = getattr(source, "table", None)
    if table is None:
        return len(source)
    return int(len(table.labels) if use_difficult else (~table.difficult).sum())


__all__ = ["Batch", "Sample", "build_source", "build_dataset", "VOCSource", "COCOSource", "ShapesDataset", "SSDDataset",
           "SSDAugmentation", "ResizeTransform", "collate", "train_loader", "eval_loader", "as_model_input",
           "DatasetError", "read_image", "decode_image", "image_files", "PHOTO_EXTENSIONS", "objects_for_training"]
