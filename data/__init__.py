"""Datasets, augmentation and loading. `build_source(cfg, train=...)` is the one place a config becomes data."""
import os

import numpy as np
import torch

from config import PIXEL_FORMATS

from .coco import COCOSource
from .images import PHOTO_EXTENSIONS, decode_image, image_files, image_header_size, read_image
from .loader import Batch, Sample, SSDDataset, as_model_input, collate, eval_loader, train_loader
from .problems import DatasetError
from .records import DataSource
from .shapes import ShapesDataset
from .transforms import ResizeTransform, SSDAugmentation
from .voc import VOCSource, layout_sets, single_folder_sets, voc_layout
from .yolo import YOLOSource


def build_source(cfg, train: bool) -> DataSource:
    """The dataset source (images + annotations) for cfg.data.sets (train) or cfg.data.test_sets (evaluation)."""
    sets = cfg.data.sets if train else cfg.data.test_sets
    if cfg.data.dataset == "shapes":
        split = sets[0] if sets else ("train" if train else "test")
        count = cfg.data.shapes_train_images if split == "train" else cfg.data.shapes_test_images
        return ShapesDataset(split, count, seed=cfg.run.seed if split == "train" else 0)
    if cfg.data.dataset == "VOC":
        root = os.path.expanduser(cfg.data.dataset_root)
        layout = voc_layout(root) if os.path.isdir(root) else None
        flag = "--sets" if train else "--test-sets"
        if layout is not None and layout.kind == "lists":
            sets = single_folder_sets(root, sets, flag)
        elif layout is not None and layout.kind != "devkit":
            sets = layout_sets(root, layout, sets, flag)
        return VOCSource(root, sets, cfg.model.class_names, skip_empty=train, layout=layout)
    if cfg.data.dataset == "COCO":
        return COCOSource(cfg.data.dataset_root, sets, cfg.model.class_names, skip_empty=train)
    if cfg.data.dataset == "YOLO":
        return YOLOSource(cfg.data.dataset_root, sets, cfg.model.class_names, skip_empty=train)
    raise DatasetError(f"unknown dataset {cfg.data.dataset!r}: use VOC, COCO, YOLO or shapes")


def build_dataset(cfg, train: bool, source=None, problems_path: str = None):
    """`problems_path` (training): where an image that cannot be decoded is named, besides the log."""
    source = build_source(cfg, train) if source is None else source
    if train and cfg.data.augment:
        spec = PIXEL_FORMATS[cfg.model.pixel_format]
        mean_bgr = spec["mean"][::-1] if spec["rgb"] else spec["mean"]
        transform = SSDAugmentation(cfg.model.size, mean_bgr, cfg.data.expand_max_ratio, cfg.data.photometric)
    else:
        transform = ResizeTransform(cfg.model.size)
    return SSDDataset(source, transform, use_difficult=cfg.data.train_difficult if train else True, substitute=train,
                      problems_path=problems_path)


def normalised_boxes(source, use_difficult: bool, shapes_images: int = 200, unreadable=()) -> tuple:
    """-> (boxes [N, 4] float32 corners in [0, 1] of the square network input, labels [N] int64, images read):
    every object a run learns from, as the resize to S x S makes it (the prior coverage and fit see these), leaving
    out the images at the indices `unreadable` (training never sees them). The built-in shapes set is generated,
    so its first `shapes_images` images stand for it."""
    table = source.table
    if table is None:
        count = min(len(source), shapes_images)
        boxes, labels = [np.zeros((0, 4), np.float32)], [np.zeros(0, np.int64)]
        for i in range(count):
            image, b, lab, difficult = source.load(i)
            use = np.ones(len(lab), bool) if use_difficult else ~difficult
            height, width = image.shape[:2]
            boxes.append(b[use] / np.array([width, height, width, height], np.float32))
            labels.append(lab[use])
        return torch.from_numpy(np.concatenate(boxes)), torch.from_numpy(np.concatenate(labels)), count
    sizes = table.sizes.astype(np.float32)
    for i in np.flatnonzero((sizes <= 0).any(1)):  # no size in the annotation: the image header's
        sizes[i] = image_header_size(str(table.image_paths[i]))
    per_object = np.repeat(sizes, np.diff(table.offsets), axis=0)  # (height, width)
    keep = np.ones(len(table.labels), bool) if use_difficult else ~table.difficult
    keep &= (per_object > 0).all(1)
    readable = np.ones(len(table), bool)
    readable[list(unreadable)] = False
    keep &= np.repeat(readable, np.diff(table.offsets))
    scale = np.concatenate([per_object[:, ::-1], per_object[:, ::-1]], 1)[keep]  # x1 y1 x2 y2 / w h w h
    boxes = np.clip(table.boxes[keep] / scale, 0, 1)
    return torch.from_numpy(boxes), torch.from_numpy(table.labels[keep]), len(table)


def objects_for_training(source, use_difficult: bool) -> int:
    """Objects of the label list a training run would learn from (file-backed sources; shapes always has some)."""
    table = source.table
    if table is None:
        return len(source)
    return int(len(table.labels) if use_difficult else (~table.difficult).sum())


__all__ = ["Batch", "Sample", "DataSource", "build_source", "build_dataset", "VOCSource", "COCOSource", "YOLOSource",
           "ShapesDataset", "SSDDataset", "SSDAugmentation", "ResizeTransform", "collate", "train_loader",
           "eval_loader", "as_model_input", "DatasetError", "read_image", "decode_image", "image_files",
           "PHOTO_EXTENSIONS", "objects_for_training", "normalised_boxes"]
