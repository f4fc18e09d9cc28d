import json
import logging
import os

import cv2
import numpy as np
import pytest
import torch
from helpers import make_voc_folder, voc_xml

from config_resolve import config_for
from data import (
    COCOSource,
    DatasetError,
    ResizeTransform,
    ShapesDataset,
    SSDAugmentation,
    SSDDataset,
    VOCSource,
    build_dataset,
    collate,
)
from data.loader import TrainSampler
from data.shapes import generate
from scripts.check_data import check

BCCD = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "bccd")


def test_voc_parsing_one_based_difficult_and_custom_labels(tmp_path):
    make_voc_folder(tmp_path, {"a": ([("cat", 1, 1, 10, 20), ("dog", 5, 6, 40, 30, 1)], 50, 40)})
    ds = VOCSource(str(tmp_path), ["trainval"], ["dog", "cat"])
    boxes, labels, difficult = ds.annotation(0)
    # 1-based inclusive (1, 1, 10, 20) -> continuous (0, 0, 10, 20): width 10 = devkit's 10 - 1 + 1
    assert boxes.tolist() == [[0, 0, 10, 20], [4, 5, 40, 30]]
    assert labels.tolist() == [1, 0] and difficult.tolist() == [False, True]
    image, *_ = ds.load(0)
    assert image.shape == (40, 50, 3) and image.dtype == np.uint8


def test_devkit_layout_concatenates_sets(tmp_path):
    make_voc_folder(tmp_path / "VOC2007", {"000001": ([("cat", 1, 1, 9, 9)], 20, 20)})
    make_voc_folder(tmp_path / "VOC2012", {"2008_000001": ([("dog", 2, 2, 9, 9)], 20, 20),
                                           "2008_000002": ([], 20, 20)})
    ds = VOCSource(str(tmp_path), ["2007:trainval", "2012:trainval"], ["cat", "dog"])
    assert [ds.image_id(i) for i in range(len(ds))] == ["000001", "2008_000001", "2008_000002"]
    assert ds.annotation(2)[0].shape == (0, 4)  # an image without objects is a valid negative
    with pytest.raises(DatasetError, match="VOC2010"):
        VOCSource(str(tmp_path), ["2010:trainval"], ["cat"])
    with pytest.raises(DatasetError, match="image set 'test' not found"):
        VOCSource(str(tmp_path / "VOC2007"), ["test"], ["cat"])


def test_bad_data_is_reported_and_skipped(tmp_path, caplog):
    images = {
        "good": ([("cat", 1, 1, 10, 10)], 30, 30),
        "outside": ([("cat", -5, 3, 45, 10)], 30, 30),
        "degenerate": ([("cat", 5, 5, 5, 9), ("cat", 9, 9, 3, 3), ("cat", 1, 1, 8, 8)], 30, 30),
        "unknown": ([("unicorn", 1, 1, 10, 10), ("cat", 2, 2, 9, 9)], 30, 30),
        "corrupt": ([("cat", 1, 1, 10, 10)], 30, 30),
        "noimage": ([("cat", 1, 1, 10, 10)], 30, 30),
        "malformed": ([], 30, 30),
        "emptyxml": ([], 30, 30),
        "gray": ([("cat", 1, 1, 10, 10)], 30, 30),
        "rgba": ([("cat", 1, 1, 10, 10)], 30, 30),
        "cmyk": ([("cat", 1, 1, 10, 10)], 30, 30),
    }
    make_voc_folder(tmp_path, images, sets={"trainval": list(images) + ["ghost"]})
    (tmp_path / "JPEGImages" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    os.remove(tmp_path / "JPEGImages" / "noimage.jpg")
    (tmp_path / "Annotations" / "malformed.xml").write_text("<annotation><object><name>cat</name>")
    (tmp_path / "Annotations" / "emptyxml.xml").write_text("")
    os.remove(tmp_path / "JPEGImages" / "gray.jpg")
    cv2.imwrite(str(tmp_path / "JPEGImages" / "gray.png"), np.full((30, 30), 128, np.uint8))
    os.remove(tmp_path / "JPEGImages" / "rgba.jpg")
    cv2.imwrite(str(tmp_path / "JPEGImages" / "rgba.png"), np.full((30, 30, 4), 200, np.uint8))
    (tmp_path / "Annotations" / "gray.xml").write_text(voc_xml("gray.png", 30, 30, [("cat", 1, 1, 10, 10)]))
    (tmp_path / "Annotations" / "rgba.xml").write_text(voc_xml("rgba.png", 30, 30, [("cat", 1, 1, 10, 10)]))
    from PIL import Image
    Image.new("CMYK", (30, 30), (0, 128, 255, 0)).save(tmp_path / "JPEGImages" / "cmyk.jpg")

    with caplog.at_level(logging.WARNING):
        ds = VOCSource(str(tmp_path), "trainval", ["cat"])
    ids = [ds.image_id(i) for i in range(len(ds))]
    assert ids == ["good", "outside", "degenerate", "unknown", "corrupt", "gray", "rgba", "cmyk"]
    text = "\n".join(ds.problems)
    assert "ghost.xml does not exist" in text
    assert "malformed.xml: malformed XML" in text and "emptyxml.xml: malformed XML" in text
    assert "noimage.xml: no image" in text
    assert "unknown.xml: 1 object(s) of class 'unicorn'" in text
    assert "outside.xml: 1 box(es) outside the 30x30 image, clipped" in text
    assert text.count("degenerate.xml") == 2 and "zero-area or inverted" in text
    assert ds.annotation(ids.index("outside"))[0].tolist() == [[0, 2, 30, 10]]
    assert len(ds.annotation(ids.index("degenerate"))[1]) == 1
    assert caplog.records and all("\n" not in r.getMessage() for r in caplog.records)
    for name in ("gray", "rgba", "cmyk"):
        image, *_ = ds.load(ids.index(name))
        assert image.shape == (30, 30, 3) and image.dtype == np.uint8
    blue, _, red = ds.load(ids.index("cmyk"))[0][0, 0]  # CMYK (0, 128, 255, 0) is orange: RGB (255, 127, 0)
    assert red > 200 and blue < 30
    with pytest.raises(ValueError, match="corrupt.jpg: corrupt"):
        ds.load(ids.index("corrupt"))
    # training substitutes the next readable image and logs the file
    dataset = SSDDataset(ds, ResizeTransform(32))
    with caplog.at_level(logging.WARNING):
        image, target, index, size = dataset[ids.index("corrupt")]
    assert index == ids.index("gray") and image.shape == (3, 32, 32)
    assert any("corrupt.jpg" in r.getMessage() for r in caplog.records)
    lines, count, unreadable = check(ds)
    assert count == len(ds.problems) + 1 and any("corrupt.jpg" in line for line in lines)
    assert unreadable == [ids.index("corrupt")]


def test_empty_set_and_missing_root(tmp_path):
    make_voc_folder(tmp_path, {"a": ([("cat", 1, 1, 10, 10)], 20, 20)}, sets={"trainval": ["a"], "empty": []})
    with pytest.raises(DatasetError, match="no usable image"):
        VOCSource(str(tmp_path), "empty", ["cat"])
    with pytest.raises(DatasetError, match="dataset root not found"):
        VOCSource(str(tmp_path / "nope"), "trainval", ["cat"])


def test_coco_tiny_json(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "val2017").mkdir()
    for name in ("1.jpg", "2.jpg", "3.jpg"):
        cv2.imwrite(str(tmp_path / "val2017" / name), np.zeros((40, 50, 3), np.uint8))
    doc = {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 50, "height": 40} for i in (1, 2, 3)],
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 18, "bbox": [5, 6, 10, 20], "area": 200, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, 50, 40], "area": 2000, "iscrowd": 1},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [1, 1, 4, 4], "area": 16, "iscrowd": 0},
        ],
    }
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(doc))
    train = COCOSource(str(tmp_path), ["val2017"], skip_empty=True)
    assert train.class_names == ["person", "dog"] and train.category_ids == [1, 18]
    assert [train.image_id(i) for i in range(len(train))] == ["1", "2"]  # image 3 has no annotation
    boxes, labels, _ = train.annotation(0)
    assert boxes.tolist() == [[5, 6, 15, 26]] and labels.tolist() == [1]  # crowd box left out
    assert len(COCOSource(str(tmp_path), "val2017", skip_empty=False)) == 3


def draw_boxes_image(boxes, size=(200, 300)):
    image = np.full((size[0], size[1], 3), 30, np.uint8)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    for (x1, y1, x2, y2), colour in zip(boxes.astype(int), colours):
        image[y1:y2, x1:x2] = colour
    return image, colours


def test_augmentation_keeps_boxes_on_their_pixels():
    boxes = np.array([[10, 20, 90, 100], [150, 30, 280, 80], [60, 120, 200, 190]], np.float32)
    image, colours = draw_boxes_image(boxes)
    labels = np.arange(3)
    augment = SSDAugmentation(300, mean_bgr=(30, 30, 30), photometric=None)
    checked = 0
    for seed in range(60):
        out, out_boxes, out_labels = augment(image, boxes, labels, np.random.default_rng(seed))
        assert out.shape == (300, 300, 3) and out.dtype == np.uint8
        assert ((out_boxes >= 0) & (out_boxes <= 1)).all()
        for box, label in zip(out_boxes * 300, out_labels):
            colour = np.array(colours[label])
            match = (np.abs(out.astype(int) - colour).sum(-1) < 60)
            ys, xs = np.nonzero(match)
            if len(xs) < 20:
                continue  # tiny after zoom-out
            found = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            assert np.abs(found - box).max() <= 2.0, (seed, found, box)
            checked += 1
    assert checked > 60


def test_photometric_distortion_keeps_shape_and_changes_colours():
    image = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    augment = SSDAugmentation(300, photometric="ssd.pytorch", expand_max_ratio=1)
    outs = [augment(image, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.random.default_rng(s))[0]
            for s in range(8)]
    assert all(o.shape == (300, 300, 3) for o in outs)
    assert len({o.tobytes() for o in outs}) == 8


def test_base_transform_normalises_boxes():
    image = np.zeros((100, 200, 3), np.uint8)
    out, boxes, _ = ResizeTransform(300)(image, np.array([[20, 10, 200, 50]], np.float32), np.array([0]))
    assert out.shape == (300, 300, 3) and np.allclose(boxes, [[0.1, 0.1, 1.0, 0.5]])


def test_shapes_is_deterministic_and_boxes_are_tight():
    a = generate(0, "train", 7)
    b = generate(0, "train", 7)
    c = generate(0, "test", 7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0]) if a[0].shape == c[0].shape else True
    image, boxes, labels = a
    assert len(boxes) >= 1 and set(labels.tolist()) <= set(range(5))
    h, w = image.shape[:2]
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    ds = ShapesDataset("test", 10)
    assert len(ds) == 10 and ds.annotation(3)[0].shape[1] == 4


def test_collate_pads_targets_and_sampler_resumes_exactly():
    cfg = config_for("shapes", shapes_train_images=12, size=300)
    dataset = build_dataset(cfg, train=True)
    images, targets, indices, sizes = collate([dataset[(0, (0, 0, 0))], dataset[(1, (0, 0, 1))]])
    assert images.dtype == torch.uint8 and images.shape == (2, 3, 300, 300)
    assert targets.shape[0] == 2 and targets.shape[2] == 5 and (targets[..., 4] >= -1).all()
    full = [k for _, k in zip(range(30), TrainSampler(12, seed=3))]
    resumed = [k for _, k in zip(range(18), TrainSampler(12, seed=3, start_sample=12))]
    assert resumed == full[12:]
    assert full[:12] != full[12:24] and sorted(i for i, _ in full[:12]) == list(range(12))
    ranks = [[i for _, (i, _) in zip(range(6), TrainSampler(11, seed=0, rank=r, world_size=2))] for r in (0, 1)]
    assert len(set(ranks[0]) | set(ranks[1])) == 11


@pytest.mark.skipif(not os.path.isdir(BCCD), reason="../shared/data/bccd absent")
def test_bccd_real_voc_folder():
    ds = VOCSource(BCCD, ["trainval", "test"], ["RBC", "WBC", "Platelets"])
    assert len(ds) == 364
    assert sum("zero-area" in p for p in ds.problems) == 2
    image, boxes, labels, _ = ds.load(0)
    assert image.shape == (480, 640, 3) and len(boxes) == len(labels) > 0


def test_shapes_written_as_voc_reads_back_identically(tmp_path):
    from scripts.make_shapes_voc import main as make_shapes_voc
    make_shapes_voc(["--output", str(tmp_path), "--train", "3", "--test", "2"])
    ds = VOCSource(str(tmp_path), ["test"], ["ellipse", "rectangle", "triangle", "star", "cross"])
    shapes = ShapesDataset("test", 2)
    for i in range(2):
        boxes, labels, _ = ds.annotation(i)
        ref_boxes, ref_labels, _ = shapes.annotation(i)
        assert np.array_equal(boxes, ref_boxes) and np.array_equal(labels, ref_labels)


def test_swap_channels_equals_indexing():
    from data.transforms import swap_channels
    image = np.random.default_rng(1).integers(0, 255, (7, 5, 3), dtype=np.uint8)
    for order in ([2, 0, 1], [1, 2, 0], [0, 2, 1], [2, 1, 0]):
        assert np.array_equal(swap_channels(image, np.array(order)), image[..., order])


def labelimg_copy(voc_root, folder, ids, side_by_side=True, images="images", annotations="annotations"):
    """A copy of `ids` of a VOC-style folder as LabelImg writes it (XML beside the image), or as images/ +
    annotations/ folders (any case)."""
    import shutil
    image_dir = folder if side_by_side else folder / images
    xml_dir = folder if side_by_side else folder / annotations
    image_dir.mkdir(parents=True, exist_ok=True)
    xml_dir.mkdir(parents=True, exist_ok=True)
    for i in ids:
        shutil.copy(voc_root / "JPEGImages" / f"{i}.jpg", image_dir / f"{i}.jpg")
        shutil.copy(voc_root / "Annotations" / f"{i}.xml", xml_dir / f"{i}.xml")
    return folder


def test_voc_folders_as_annotation_tools_write_them(tmp_path, capsys):
    from helpers import cells_folder

    from data import DatasetError, build_source
    from data.voc import VOCSource, voc_layout
    from scripts.check_data import main as check_main
    ids = [f"c{i}" for i in range(12)]
    voc = cells_folder(tmp_path / "voc", count=12, sets={"all": ids})
    names = ["cell", "dot"]
    # LabelImg: one folder, XMLs beside the images, no lists: a hash split, the same for training and evaluation
    flat = labelimg_copy(voc, tmp_path / "labelimg", ids)
    train_cfg = config_for("VOC", dataset_root=str(flat), class_names=names)
    train, test = build_source(train_cfg, train=True), build_source(train_cfg, train=False)
    train_ids = {train.image_id(i) for i in range(len(train))}
    test_ids = {test.image_id(i) for i in range(len(test))}
    assert train_ids | test_ids == set(ids) and not train_ids & test_ids and len(test_ids) >= 1
    again = build_source(train_cfg, train=False)
    assert {again.image_id(i) for i in range(len(again))} == test_ids
    assert len(train.table.labels) == 2 * len(train_ids)
    # images/ + annotations/ in capitals: the same split
    pair = labelimg_copy(voc, tmp_path / "pair", ids, side_by_side=False, images="IMAGES", annotations="ANNOTATIONS")
    paired = build_source(config_for("VOC", dataset_root=str(pair), class_names=names), train=False)
    assert {paired.image_id(i) for i in range(len(paired))} == test_ids
    # Roboflow's Pascal VOC export: train/ valid/ test/, images and XMLs side by side
    export = tmp_path / "roboflow"
    for split, chosen in (("train", ids[:8]), ("valid", ids[8:10]), ("test", ids[10:])):
        labelimg_copy(voc, export / split, chosen)
    assert voc_layout(str(export)).kind == "splits"
    cfg = config_for("VOC", dataset_root=str(export), class_names=names)
    assert len(build_source(cfg, train=True)) == 10 and len(build_source(cfg, train=False)) == 2
    only = config_for("VOC", dataset_root=str(export), class_names=names, sets=["train"], test_sets=["valid"])
    assert len(build_source(only, train=True)) == 8 and len(build_source(only, train=False)) == 2
    with pytest.raises(DatasetError, match="no set 'trian'.*pass --sets with one of: train valid test"):
        build_source(config_for("VOC", dataset_root=str(export), class_names=names, sets=["trian"]), train=True)
    assert check_main(["--dataset", "VOC", "--dataset-root", str(export), "--class-names", "cell", "dot"]) == 0
    out = capsys.readouterr().out
    assert "layout: " in out and "split folders train/, valid/, test/ (images and XMLs side by side)" in out
    # nothing that fits: the error names what it found
    odd = tmp_path / "odd"
    (odd / "pics").mkdir(parents=True)
    (odd / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"no VOC layout .* it holds: pics/, 1 \.txt file"):
        VOCSource(str(odd), ["trainval"], names)
