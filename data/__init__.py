"""Datasets, augmentation and loading. `build_source(cfg, train=...)` is the one place a config becomes data."""
from config import PIXEL_FORMATS, VOC_CLASSES

from .coco import COCODetection
from .common import DatasetError, read_image
from .loader import SSDDataset, as_model_input, collate, eval_loader, train_loader
from .shapes import ShapesDataset
from .transforms import BaseTransform, SSDAugmentation
from .voc import VOCDetection


def build_source(cfg, train: bool):
    """The dataset source (images + annotations) for cfg.sets (train) or cfg.test_sets (evaluation)."""
    sets = cfg.sets if train else cfg.test_sets
    if cfg.dataset == "shapes":
        split = sets[0] if sets else ("train" if train else "test")
        count = cfg.shapes_train_images if split == "train" else cfg.shapes_test_images
        return ShapesDataset(split, count, seed=cfg.seed if split == "train" else 0)
    if cfg.dataset == "VOC":
        return VOCDetection(cfg.dataset_root, sets, cfg.labels or VOC_CLASSES)
    if cfg.dataset == "COCO":
        return COCODetection(cfg.dataset_root, sets, skip_empty=train)
    raise DatasetError(f"unknown dataset {cfg.dataset!r}: use VOC, COCO or shapes")


def build_dataset(cfg, train: bool, source=None):
    source = build_source(cfg, train) if source is None else source
    if train and cfg.augment:
        spec = PIXEL_FORMATS[cfg.pixel_format]
        mean_bgr = spec["mean"][::-1] if spec["rgb"] else spec["mean"]
        transform = SSDAugmentation(cfg.size, mean_bgr, cfg.expand_max_ratio)
    else:
        transform = BaseTransform(cfg.size)
    return SSDDataset(source, transform, use_difficult=cfg.train_difficult if train else True)


__all__ = ["build_source", "build_dataset", "VOCDetection", "COCODetection", "ShapesDataset", "SSDDataset",
           "SSDAugmentation", "BaseTransform", "collate", "train_loader", "eval_loader", "DatasetError",
           "read_image"]
