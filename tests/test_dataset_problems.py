"""Reading your own data: what is dropped, clamped, skipped or refused is counted and named, on folders each
test writes (label typos, wrong filenames, size 0, ids listed twice, missing or truncated images, PNG
transparency, COCO exports)."""
import json
import logging
import os
import re

import cv2
import numpy as np
import pytest
from helpers import FAST, cells_folder, make_voc_folder, raccoon_folder, write_coco

import train
from config_resolve import config_for
from data import COCOSource, DatasetError, VOCSource, build_dataset, build_source, decode_image
from engine import evenly_spaced, score_voc
from scripts.check_data import main as check_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_filename_naming_another_image_reads_the_ids_image(tmp_path, capsys):
    root = cells_folder(tmp_path / "d", count=2, sets={"trainval": ["c0", "c1"]})
    xml = root / "Annotations" / "c0.xml"
    xml.write_text(xml.read_text().replace("<filename>c0.jpg</filename>", "<filename>c1.jpg</filename>"))
    source = VOCSource(str(root), ["trainval"], ["cell", "dot"])
    assert source.image_path(0).endswith("c0.jpg") and source.image_path(1).endswith("c1.jpg")
    assert source.problems.counts["XMLs whose <filename> names another image, read as JPEGImages/<id>"] == 1
    assert check_main(["--dataset", "VOC", "--dataset-root", str(root), "--sets", "trainval", "--class-names", "cell",
                       "dot", "--no-decode"]) == 1
    assert f"{xml}: <filename> c1.jpg is another image" in capsys.readouterr().out


def test_size_zero_is_read_from_the_image_alike_for_train_eval_and_check(tmp_path, capsys):
    root = cells_folder(tmp_path / "d", count=2, sets={"trainval": ["c0", "c1"]})
    xml = root / "Annotations" / "c0.xml"
    text = re.sub(r"<width>\d+</width>", "<width>0</width>", xml.read_text())
    text = re.sub(r"<height>\d+</height>", "<height>0</height>", text)
    # a second cell that lies wholly right of the real 64-pixel-wide image, and one half outside it
    text = text.replace("</annotation>", "<object><name>cell</name><bndbox><xmin>70</xmin><ymin>5</ymin><xmax>90"
                        "</xmax><ymax>20</ymax></bndbox></object><object><name>dot</name><bndbox><xmin>50</xmin>"
                        "<ymin>5</ymin><xmax>80</xmax><ymax>20</ymax></bndbox></object></annotation>")
    xml.write_text(text)
    for skip_empty in (False, True):  # evaluation and training read the same objects
        source = VOCSource(str(root), ["trainval"], ["cell", "dot"], skip_empty=skip_empty)
        boxes, labels, _ = source.annotation(0)
        assert len(labels) == 3 and boxes[:, 2].max() == 64
        assert source.problems.counts["boxes wholly outside the image, dropped"] == 1
        assert source.problems.counts["boxes past the image edge, clipped"] == 1
    # the ground truth fed back as detections scores exactly 1
    results = {i: dict(zip(("boxes", "labels"), source.annotation(i)[:2])) for i in range(len(source))}
    for det in results.values():
        det["scores"] = np.ones(len(det["labels"]))
    assert score_voc(source, results)["mAP"] == pytest.approx(1.0)
    assert check_main(["--dataset", "VOC", "--dataset-root", str(root), "--sets", "trainval", "--class-names", "cell",
                       "dot"]) == 1
    out = capsys.readouterr().out
    assert "1 XMLs without <size> (or 0): size read from the image" in out
    assert f"{xml}: 1 box(es) wholly outside the 64x48 image, dropped" in out


def test_an_id_listed_twice_is_read_once(tmp_path):
    root = cells_folder(tmp_path / "d", count=3, sets={"test": ["c0", "c1", "c0", "c2"]})
    source = VOCSource(str(root), ["test"], ["cell", "dot"])
    assert len(source) == 3 and source.problems.counts["ids listed more than once, read once"] == 1


def test_voc_training_skips_images_without_objects_of_labels_as_the_checker_says(tmp_path, capsys):
    images = {"a": ([("cell", 3, 4, 30, 28)], 64, 48), "b": ([("other", 3, 4, 30, 28)], 64, 48),
              "c": ([("cell", 5, 6, 20, 30)], 64, 48)}
    make_voc_folder(tmp_path, images, sets={"trainval": ["a", "b", "c"], "test": ["a", "b", "c"]})
    flags = ["--dataset", "VOC", "--dataset-root", str(tmp_path), "--class-names", "cell"]
    train_source = build_source(train.resolve(dict(dataset="VOC", dataset_root=str(tmp_path), class_names=["cell"],
                                                   sets=["trainval"], test_sets=["test"])), train=True)
    assert len(train_source) == 2
    assert train_source.problems.counts["images without any object of --class-names, skipped for training"] == 1
    check_main(flags + ["--sets", "trainval"])
    out = capsys.readouterr().out
    assert "images: 2 readable (0 without objects)" in out and "1 images without any object of --class-names" in out
    check_main(flags + ["--test-sets", "test", "--split", "test"])
    assert "images: 3 readable (1 without objects)" in capsys.readouterr().out


def test_all_images_missing_names_that_cause(tmp_path):
    root = cells_folder(tmp_path / "d", count=3, sets={"test": ["c0", "c1", "c2"]})
    for name in os.listdir(root / "JPEGImages"):
        os.remove(root / "JPEGImages" / name)
    xml = root / "Annotations" / "c0.xml"
    xml.write_text(xml.read_text().replace("<xmax>30</xmax>", "<xmax>99</xmax>"))  # one box problem as well
    with pytest.raises(DatasetError, match=r"\(3 annotated images not found, skipped, first: "):
        VOCSource(str(root), ["test"], ["cell", "dot"])


def test_half_pixel_excess_is_clamped_quietly_real_excess_reported(tmp_path, capsys):
    root = cells_folder(tmp_path / "d", count=2, sets={"trainval": ["c0", "c1"]})
    xml = root / "Annotations" / "c0.xml"
    xml.write_text(xml.read_text().replace("<xmax>50</xmax>", "<xmax>64.5</xmax>"))
    flags = ["--dataset", "VOC", "--dataset-root", str(root), "--sets", "trainval", "--class-names", "cell", "dot"]
    assert check_main(flags) == 0
    assert "1 boxes past the image edge by half a pixel or less (rounding), clamped" in capsys.readouterr().out
    source = VOCSource(str(root), ["trainval"], ["cell", "dot"])
    assert source.annotation(0)[0][:, 2].max() == 64
    xml.write_text(xml.read_text().replace("<xmax>64.5</xmax>", "<xmax>67</xmax>"))
    assert check_main(flags) == 1
    assert "box(es) outside the 64x48 image, clipped" in capsys.readouterr().out


def test_label_typo_stops_before_training_naming_what_the_annotations_hold(tmp_path, capsys):
    root = raccoon_folder(tmp_path / "data")
    code = train.main(["--dataset", "VOC", "--dataset-root", str(root), "--sets", "train", "--test-sets", "test",
                       "--class-names", "racoon", "--output", str(tmp_path / "run")] + FAST)
    err = capsys.readouterr().err
    assert code == 2 and "no object of --class-names racoon" in err and "raccoon (2)" in err
    assert "Traceback" not in err and not (tmp_path / "run" / "final.pth").exists()
    # forgetting --class-names on a custom folder falls back to VOC's 20 names: the same stop, not a run on nothing
    code = train.main(["--dataset", "VOC", "--dataset-root", str(root), "--sets", "train", "--test-sets", "test",
                       "--output", str(tmp_path / "run2")] + FAST)
    assert code == 2 and "raccoon (2)" in capsys.readouterr().err
    # one typo among good labels: the run goes on, and says which class has nothing to learn from
    code = train.main(["--dataset", "VOC", "--dataset-root", str(root), "--sets", "train", "--test-sets", "test",
                       "--class-names", "raccoon", "background_thng", "--no-final-eval",
                       "--output", str(tmp_path / "run3")] + FAST)
    err = capsys.readouterr().err
    assert code == 0 and "no training object of class(es) ['background_thng']" in err


def test_dropped_objects_are_summarised_once_per_name(tmp_path, caplog):
    images = {f"i{k}": ([("mask", 1, 1, 10, 10), ("mask_weared_incorrect", 2, 2, 9, 9),
                         ("mask_weared_incorrect", 3, 3, 20, 20)], 30, 30) for k in range(15)}
    make_voc_folder(tmp_path, images)
    with caplog.at_level(logging.WARNING):
        VOCSource(str(tmp_path), ["trainval"], ["mask"])
    lines = [r.getMessage() for r in caplog.records]
    assert "VOC: 30 objects of class 'mask_weared_incorrect' not in --class-names, dropped" in lines
    assert not any("i3.xml" in line for line in lines)  # per-file detail is the checker's


def write_png_rgba(path):
    rgba = np.zeros((48, 64, 4), np.uint8)
    rgba[10:30, 10:40] = (0, 0, 255, 255)  # opaque red box, transparent elsewhere (black RGB underneath)
    cv2.imwrite(str(path), rgba)


def test_a_truncated_jpeg_decodes_a_broken_one_is_named_and_the_checker_names_both(tmp_path, capsys):
    image = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8), (0, 0), 2)
    cv2.imwrite(str(tmp_path / "full.jpg"), image)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:-20])  # a few bytes short, as scraped files often are
    cut, alpha, _ = decode_image(str(tmp_path / "cut.jpg"))
    assert cut.shape == (120, 160, 3) and not alpha
    (tmp_path / "broken.jpg").write_bytes(data[:200])
    with pytest.raises(ValueError, match="broken.jpg: corrupt"):
        decode_image(str(tmp_path / "broken.jpg"))
    root = cells_folder(tmp_path / "d", count=2, sets={"trainval": ["c0", "c1"]})
    path = root / "JPEGImages" / "c1.jpg"
    path.write_bytes(path.read_bytes()[:-200])
    check_main(["--dataset", "VOC", "--dataset-root", str(root), "--sets", "trainval", "--class-names", "cell", "dot"])
    assert str(path) in capsys.readouterr().out


def test_a_transparent_png_is_composited_on_white(tmp_path):
    write_png_rgba(tmp_path / "a.png")
    composited, alpha, _ = decode_image(str(tmp_path / "a.png"))
    assert alpha and composited.shape == (48, 64, 3)
    assert composited[0, 0].tolist() == [255, 255, 255]  # transparent -> white, not the hidden black
    assert composited[20, 20].tolist() == [0, 0, 255]


def test_coco_categories_sharing_a_name_are_named_by_id(tmp_path, caplog):
    images = [{"id": 1, "file_name": "1.jpg", "width": 64, "height": 48}]
    cats = [{"id": 0, "name": "pothole"}, {"id": 1, "name": "pothole"}]
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 20], "area": 400, "iscrowd": 0}]
    write_coco(tmp_path, "train", images, cats, anns)
    with caplog.at_level(logging.WARNING):
        source = COCOSource(str(tmp_path), ["train"])
    assert source.class_names == ["pothole"] and source.category_ids == [1]
    assert "left out: pothole (id 0)" in source.notices[0]
    chosen = COCOSource(str(tmp_path), ["train"], class_names=["pothole"])
    assert chosen.category_ids == [1] and len(chosen.table.labels) == 1


def test_coco_export_labels_select_and_placeholder_category_is_left_out(tmp_path, caplog):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "train").mkdir()
    for i in (1, 2):
        cv2.imwrite(str(tmp_path / "train" / f"{i}.jpg"), np.zeros((100, 100, 3), np.uint8))
    doc = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 100, "height": 100} for i in (1, 2)],
           "categories": [{"id": 0, "name": "cells"}, {"id": 1, "name": "rbc"}, {"id": 2, "name": "wbc"},
                          {"id": 3, "name": "stray"}],
           "annotations": [{"id": k, "image_id": 1 + k % 2, "category_id": c, "bbox": [10, 10, 30, 30],
                            "area": 900, "iscrowd": 0} for k, c in enumerate([1, 1, 2, 3])]}
    (tmp_path / "annotations" / "instances_train.json").write_text(json.dumps(doc))
    with caplog.at_level(logging.WARNING):
        source = COCOSource(str(tmp_path), ["train"])
    assert source.class_names == ["rbc", "wbc", "stray"]
    assert any("1 category without any annotation left out: cells" in r.getMessage() for r in caplog.records)
    chosen = COCOSource(str(tmp_path), ["train"], class_names=["wbc", "rbc"])
    assert chosen.class_names == ["wbc", "rbc"] and chosen.category_ids == [2, 1]
    assert len(chosen.table.labels) == 3
    assert chosen.problems.counts["objects of category 'stray' not in --class-names, dropped"] == 1
    with pytest.raises(DatasetError, match="no category named \\['wbcc'\\]; its categories: cells, rbc"):
        COCOSource(str(tmp_path), ["train"], class_names=["wbcc"])
    with pytest.raises(DatasetError, match="instances_val.json: not found.*ROOT/val/"):
        COCOSource(str(tmp_path), ["val"])


def test_checker_runs_the_training_and_evaluation_code_paths(tmp_path, capsys):
    images = {"a": ([("cat", 1, 1, 10, 10), ("cat", 2, 2, 20, 20, 1)], 30, 30), "b": ([], 30, 30)}
    make_voc_folder(tmp_path, images, sets={"train": ["a", "b"], "test": ["a", "b"]})
    write_png_rgba(tmp_path / "JPEGImages" / "a.png")
    os.remove(tmp_path / "JPEGImages" / "a.jpg")
    common = ["--dataset", "VOC", "--dataset-root", str(tmp_path), "--class-names", "cat"]
    check_main(common + ["--test-sets", "test", "--split", "test"])
    out = capsys.readouterr().out
    assert "images: 2 readable (1 without objects)" in out and "transparent images: 1" in out
    check_main(common + ["--sets", "train", "--no-train-difficult"])
    out = capsys.readouterr().out
    assert "objects used: 1 (difficult ones excluded)" in out


def test_single_folder_defaults_and_evenly_spaced_limit(tmp_path):
    make_voc_folder(tmp_path / "with", {"a": ([("cat", 1, 1, 9, 9)], 20, 20)}, sets={"trainval": ["a"],
                                                                                      "test": ["a"]})
    cfg = config_for("VOC", dataset_root=str(tmp_path / "with"), class_names=["cat"])
    assert build_source(cfg, train=False).name == "VOC" and len(build_source(cfg, train=True)) == 1
    make_voc_folder(tmp_path / "without", {"a": ([("cat", 1, 1, 9, 9)], 20, 20)}, sets={"train": ["a"]})
    cfg = config_for("VOC", dataset_root=str(tmp_path / "without"), class_names=["cat"])
    with pytest.raises(DatasetError, match="no image set 'test'.*pass --test-sets with one of: train"):
        build_source(cfg, train=False)
    assert evenly_spaced(10, 3) == [0, 4, 9] and evenly_spaced(5, 0) == [0, 1, 2, 3, 4]
    assert evenly_spaced(100, 4) == [0, 33, 66, 99]


def test_text_files_saved_with_a_byte_order_mark_lose_nothing(tmp_path):
    """Windows Notepad and PowerShell's `Out-File -Encoding utf8` start a text file with an invisible BOM."""
    root = cells_folder(tmp_path / "voc", count=3, sets={"test": ["c0", "c1", "c2"]})
    listing = root / "ImageSets" / "Main" / "test.txt"
    listing.write_bytes(b"\xef\xbb\xbf" + listing.read_bytes())
    source = VOCSource(str(root), ["test"], ["cell", "dot"])
    assert len(source) == 3 and not source.problems
    images = [{"id": 1, "file_name": "1.jpg", "width": 64, "height": 48}]
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 20], "area": 400, "iscrowd": 0}]
    write_coco(tmp_path / "coco", "train", images, [{"id": 1, "name": "cell"}], anns)
    path = tmp_path / "coco" / "annotations" / "instances_train.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(COCOSource(str(tmp_path / "coco"), ["train"]).table.labels) == 1


def test_coco_categories_of_one_name_merge_and_every_dropped_annotation_is_counted_once(tmp_path, caplog):
    """A category renamed to another's name is one class (merged, said once); boxes wholly outside the image, ids
    of images or categories the file does not define, and annotations without a bbox or category_id are each
    counted once under their own reason, never as 'not in --class-names'."""
    images = [{"id": 1, "file_name": "1.jpg", "width": 64, "height": 48}]
    cats = [{"id": 1, "name": "car"}, {"id": 2, "name": "car"}, {"id": 3, "name": "bus"}]
    box = [5, 5, 20, 20]
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": box}, {"id": 2, "image_id": 1, "category_id": 2,
                                                                       "bbox": box},
            {"id": 3, "image_id": 1, "category_id": 2, "bbox": box}, {"id": 4, "image_id": 1, "category_id": 3,
                                                                       "bbox": box},
            {"id": 5, "image_id": 1, "category_id": 3, "bbox": [70, 5, 10, 10]},  # wholly right of the image
            {"id": 6, "image_id": 9, "category_id": 3, "bbox": box},  # an image the file does not list
            {"id": 7, "image_id": 1, "category_id": 8, "bbox": box},  # a category it does not define
            {"id": 8, "image_id": 1, "category_id": 3}, {"id": 9, "image_id": 1, "category_id": None, "bbox": box}]
    write_coco(tmp_path, "train", images, cats, anns)
    with caplog.at_level(logging.WARNING):
        source = COCOSource(str(tmp_path), ["train"], skip_empty=False)
    assert source.class_names == ["car", "bus"] and source.category_ids == [2, 3]
    assert np.bincount(source.table.labels).tolist() == [3, 1]
    assert "categories sharing a name merged, one name one class: car (ids 1, 2)" in source.notices[-1]
    counts = source.problems.counts
    assert counts["boxes wholly outside the image, dropped"] == 1
    assert counts["objects on an image_id the file does not list, dropped"] == 1
    assert counts["objects of a category_id the file does not define, dropped"] == 1
    assert counts["annotations without a usable bbox, image_id or category_id, dropped"] == 2
    assert not [k for k in counts if "not in --class-names" in k or "clipped" in k or "zero-area" in k]
    chosen = COCOSource(str(tmp_path), ["train"], class_names=["car"], skip_empty=False)
    assert chosen.class_names == ["car"] and len(chosen.table.labels) == 3


def test_the_checker_counts_agree_when_images_cannot_be_decoded(tmp_path, capfd):
    """An unreadable image's objects are neither 'used' nor in the prior coverage; an opaque RGBA image is not
    'transparent'; libjpeg's own warnings do not leak; training warns once per unreadable file."""
    root = cells_folder(tmp_path / "d", count=4, sets={"trainval": ["c0", "c1", "c2", "c3"]})
    (root / "JPEGImages" / "c0.jpg").write_bytes(b"\xff\xd8\xff garbage")
    cut = root / "JPEGImages" / "c1.jpg"
    cut.write_bytes(cut.read_bytes()[:-200])
    opaque = cv2.cvtColor(cv2.imread(str(root / "JPEGImages" / "c2.jpg")), cv2.COLOR_BGR2BGRA)
    (root / "JPEGImages" / "c2.jpg").unlink()
    cv2.imwrite(str(root / "JPEGImages" / "c2.png"), opaque)
    assert check_main(["--dataset", "VOC", "--dataset-root", str(root), "--sets", "trainval", "--class-names",
                       "cell", "dot"]) == 1
    out, err = capfd.readouterr()
    assert "images: 3 readable (0 without objects), 1 unreadable (their objects not counted below)" in out
    assert "objects used: 6" in out and "of 6 boxes" in out and "transparent images" not in out
    assert "Premature end of JPEG" not in out + err
    cfg = config_for("VOC", dataset_root=str(root), sets=["trainval"], class_names=["cell", "dot"])
    dataset = build_dataset(cfg, train=True, problems_path=str(tmp_path / "dataset_problems.txt"))
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("ssd.data").addHandler(handler)
    try:
        for _ in range(3):
            dataset[(0, (0, 1))]
    finally:
        logging.getLogger("ssd.data").removeHandler(handler)
    assert len([r for r in records if "c0.jpg" in r.getMessage()]) == 1
    lines = (tmp_path / "dataset_problems.txt").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("training set: ") and "c0.jpg" in lines[0]
