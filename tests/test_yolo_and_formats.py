"""YOLO-format folders and Roboflow's COCO export: read with the same counts and one-line errors as VOC, and a
YOLO / COCO copy of a real VOC set gives the same images, boxes, coverage and scores as the VOC folder."""
import os

import numpy as np
import pytest
from helpers import write_coco_copy, write_yolo_copy

import scripts.check_data
from config_resolve import resolve
from data import DatasetError, VOCSource, build_source
from engine.priors import prior_report

BCCD = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "bccd")
NAMES = ["RBC", "WBC", "Platelets"]


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def yolo_folder(root, labels: dict, names="[cat, dog]", extra_images=()):
    """images/train/<stem>.jpg (64 x 48) with labels/train/<stem>.txt holding `labels[stem]` (None: no file)."""
    import cv2
    for stem in list(labels) + list(extra_images):
        os.makedirs(root / "images" / "train", exist_ok=True)
        cv2.imwrite(str(root / "images" / "train" / f"{stem}.jpg"), np.full((48, 64, 3), 128, np.uint8))
    for stem, text in labels.items():
        if text is not None:
            write(str(root / "labels" / "train" / f"{stem}.txt"), text)
    write(str(root / "data.yaml"), f"names: {names}\ntrain: images/train\nval: images/train\n")


def test_yolo_boxes_counts_and_quirks(tmp_path, caplog):
    root = tmp_path / "yolo"
    yolo_folder(root, {
        "a": "0 0.5 0.5 0.5 0.5\n1 0.25 0.25 0.25 0.5\n",  # two good boxes
        "b": "0 0.5 0.5 0.5\n7 0.5 0.5 0.1 0.1\n1 0.95 0.5 0.2 0.2\n",  # 4 fields; class 7; past the edge: clipped
        "c": "1 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3\n",  # a polygon: its bounding box
        "d": None,  # no label file: an image without objects
    }, extra_images=())
    write(str(root / "labels" / "train" / "ghost.txt"), "0 0.5 0.5 0.1 0.1\n")  # a label file without an image
    with caplog.at_level("WARNING"):
        train = build_source(resolve({"dataset": "YOLO", "dataset_root": str(root)}), train=True)
        test = build_source(resolve({"dataset": "YOLO", "dataset_root": str(root)}), train=False)
    assert train.class_names == ["cat", "dog"]
    assert len(train) == 3 and len(test) == 4  # d has no objects: skipped for training, kept for evaluation
    boxes, labels, _ = train.annotation(0)
    assert np.allclose(boxes, [[16, 12, 48, 36], [8, 0, 24, 24]]) and labels.tolist() == [0, 1]
    boxes, labels, _ = train.annotation(1)
    assert np.allclose(boxes, [[54.4, 19.2, 64, 28.8]], atol=1e-4) and labels.tolist() == [1]
    assert np.allclose(train.annotation(2)[0], [[6.4, 4.8, 19.2, 14.4]], atol=1e-4)
    summary = " | ".join(train.problems.summary())
    for kind in ("1 label lines without 5 fields (class cx cy w h), dropped",
                 "1 objects with a class id outside data.yaml's names, dropped", "1 boxes past the image edge, clipped",
                 "1 polygon label lines read as their bounding boxes",
                 "1 images without a label file (images without objects, skipped for training)",
                 "1 label files without an image, ignored"):
        assert kind in summary, summary
    # --class-names selects by name; others dropped with a count
    dogs = build_source(resolve({"dataset": "YOLO", "dataset_root": str(root), "class_names": ["dog"]}), train=True)
    assert dogs.class_names == ["dog"] and "objects of class 'cat' not in --class-names, dropped" in \
        " ".join(dogs.problems.summary())


def test_yolo_names_as_a_dict_and_roboflow_paths(tmp_path):
    root = tmp_path / "rf"
    import cv2
    os.makedirs(root / "train" / "images")
    cv2.imwrite(str(root / "train" / "images" / "x.jpg"), np.zeros((10, 10, 3), np.uint8))
    write(str(root / "train" / "labels" / "x.txt"), "1 0.5 0.5 0.5 0.5\n")
    write(str(root / "data.yaml"), "names: {0: a, 1: b}\ntrain: ../train/images\nval: ../valid/images\n")
    source = build_source(resolve({"dataset": "YOLO", "dataset_root": str(root)}), train=True)
    assert source.class_names == ["a", "b"] and source.annotation(0)[1].tolist() == [1]


def test_data_yaml_itself_as_the_root_and_a_folder_of_another_format_named(tmp_path):
    root = tmp_path / "yolo"
    yolo_folder(root, {"x": "0 0.5 0.5 0.5 0.5\n"}, names="[a]")
    source = build_source(resolve({"dataset": "YOLO", "dataset_root": str(root / "data.yaml")}), train=True)
    assert len(source) == 1 and source.class_names == ["a"]
    with pytest.raises(DatasetError, match=f"{root}/dta.yaml: no such file"):
        build_source(resolve({"dataset": "YOLO", "dataset_root": str(root / "dta.yaml")}), train=True)
    # the folder is YOLO but --dataset says VOC or COCO: the error says which --dataset it looks like
    for dataset in ("VOC", "COCO"):
        with pytest.raises(DatasetError, match=f"{root} looks like a YOLO-format folder: use --dataset YOLO"):
            build_source(resolve({"dataset": dataset, "dataset_root": str(root), "class_names": ["a"]}), train=True)
    voc = tmp_path / "voc"
    os.makedirs(voc / "Annotations")
    with pytest.raises(DatasetError, match=f"{voc} looks like a VOC-style folder: use --dataset VOC"):
        build_source(resolve({"dataset": "YOLO", "dataset_root": str(voc)}), train=True)


@pytest.mark.parametrize("yaml_text, message", [
    (None, "no data.yaml"),
    ("train: images/train\n", "needs a 'names' entry"),
    ("names: [a]\ntrain: images/train\n", r"no 'val' split \(it lists: train\)"),
    ("names: [a]\ntrain: nowhere\nval: nowhere\n", "split 'val' path nowhere not found"),
    ("names: [a\n", "cannot be read as YAML"),
])
def test_yolo_errors_are_one_line(tmp_path, yaml_text, message):
    root = tmp_path / "bad"
    os.makedirs(root / "images" / "train")
    if yaml_text is not None:
        write(str(root / "data.yaml"), yaml_text)
    with pytest.raises(DatasetError, match=message) as error:
        build_source(resolve({"dataset": "YOLO", "dataset_root": str(root)}), train=False)
    assert "\n" not in str(error.value)


@pytest.mark.skipif(not os.path.isdir(BCCD), reason="../shared/data/bccd absent")
def test_bccd_as_voc_coco_yolo_reads_the_same(tmp_path, capsys):
    """The same real set three ways: the same images, boxes, classes, coverage and fitted priors."""
    splits = {name: VOCSource(BCCD, [name], NAMES) for name in ("train", "test")}
    write_yolo_copy(splits, str(tmp_path / "yolo"), NAMES)
    write_coco_copy(splits, str(tmp_path / "coco"), NAMES)
    write_coco_copy(splits, str(tmp_path / "roboflow"), NAMES, roboflow=True)
    common = {"backbone": "mobilenet_v3", "sets": ["train"], "test_sets": ["test"]}
    configs = {"VOC": resolve(dict(common, dataset="VOC", dataset_root=BCCD, class_names=NAMES)),
               "YOLO": resolve(dict(common, dataset="YOLO", dataset_root=str(tmp_path / "yolo"))),
               "COCO": resolve(dict(common, dataset="COCO", dataset_root=str(tmp_path / "coco"))),
               "Roboflow": resolve(dict(common, dataset="COCO", dataset_root=str(tmp_path / "roboflow")))}
    reference = None
    for name, cfg in configs.items():
        for train in (True, False):
            source = build_source(cfg, train=train)
            rows = sorted((os.path.basename(source.image_path(i)), source.annotation(i)[0].round(3).tobytes(),
                           source.annotation(i)[1].tobytes()) for i in range(len(source)))
            report = prior_report(cfg.replace(class_names=tuple(source.class_names)), source)
            found = (source.class_names, rows, report.layout.covered, report.fitted.covered, report.fit.layout)
            if reference is None or reference[0] != train:
                reference = (train, found)
            assert found == reference[1], (name, train)
    # scripts.check_data prints the coverage line for each format
    for flags in (["--dataset", "VOC", "--dataset-root", BCCD, "--class-names", *NAMES],
                  ["--dataset", "YOLO", "--dataset-root", str(tmp_path / "yolo")],
                  ["--dataset", "COCO", "--dataset-root", str(tmp_path / "roboflow")]):
        scripts.check_data.main(flags + ["--sets", "train", "--backbone", "mobilenet_v3", "--no-decode"])
        out = capsys.readouterr().out
        assert "prior coverage (IoU >= 0.5): 91.1% of 2,804 boxes with the mobilenet_v3 320 layout; fitted: " \
            "95.2%" in out


def test_coco_images_without_annotations_are_counted_for_training(tmp_path):
    import json

    import cv2
    os.makedirs(tmp_path / "train")
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        cv2.imwrite(str(tmp_path / "train" / name), np.zeros((20, 30, 3), np.uint8))
    doc = {"images": [{"id": k + 1, "file_name": n, "width": 30, "height": 20} for k, n in enumerate("abc")],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 10], "iscrowd": 0}],
           "categories": [{"id": 1, "name": "x"}]}
    for k in range(3):
        doc["images"][k]["file_name"] = f"{'abc'[k]}.jpg"
    write(str(tmp_path / "train" / "_annotations.coco.json"), json.dumps(doc))
    cfg = resolve({"dataset": "COCO", "dataset_root": str(tmp_path), "sets": ["train"], "test_sets": ["train"]})
    train = build_source(cfg, train=True)
    assert len(train) == 1
    assert train.problems.counts["images without any object of --class-names, skipped for training"] == 2
    assert len(build_source(cfg, train=False)) == 3


def test_complete_jpeg_with_zero_padding_is_not_truncated(tmp_path):
    import cv2

    from data.images import jpeg_truncated
    ok, data = cv2.imencode(".jpg", np.full((16, 16, 3), 77, np.uint8))
    for padding, truncated in ((b"", False), (b"\x00" * 2410, False), (b"\x00" * 70000 + b"\n", False)):
        path = tmp_path / f"p{len(padding)}.jpg"
        path.write_bytes(data.tobytes() + padding)
        assert jpeg_truncated(str(path)) is truncated
    path = tmp_path / "cut.jpg"
    path.write_bytes(data.tobytes()[:-40] + b"\x00" * 500)
    assert jpeg_truncated(str(path))
