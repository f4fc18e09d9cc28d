"""The flat-array datasets return, for every image, what an independent reading of the same files gives:
pycocotools' index for COCO-format files, ElementTree for VOC XML, the generator for shapes."""
import contextlib
import io
import json
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
from helpers import make_voc_folder

from data import COCOSource, VOCSource
from data.shapes import ShapesDataset, generate


def write_coco(root, name, images, categories, annotations, missing=()):
    (root / "annotations").mkdir(exist_ok=True)
    (root / name).mkdir(exist_ok=True)
    for image in images:
        if image["file_name"] not in missing:
            cv2.imwrite(str(root / name / image["file_name"]), np.zeros((8, 8, 3), np.uint8))
    doc = {"images": images, "categories": categories, "annotations": annotations}
    (root / "annotations" / f"instances_{name}.json").write_text(json.dumps(doc))


def coco_reference(ann_file, category_ids, skip_empty, present):
    """Per image (in id order): boxes clipped to the image, zero-area ones dropped, crowd and other categories out.
    -> (those images, how many images it would have used whose file is missing)."""
    from pycocotools.coco import COCO
    with contextlib.redirect_stdout(io.StringIO()):
        api = COCO(ann_file)
    out, missing = [], 0
    for image_id in sorted(api.getImgIds()):
        info = api.loadImgs(image_id)[0]
        boxes, labels = [], []
        for a in api.loadAnns(api.getAnnIds(imgIds=image_id, iscrowd=False)):
            if a["category_id"] not in category_ids:
                continue
            x, y, w, h = a["bbox"]
            x1, y1 = min(max(x, 0), info["width"]), min(max(y, 0), info["height"])
            x2, y2 = min(max(x + w, 0), info["width"]), min(max(y + h, 0), info["height"])
            if x2 > x1 and y2 > y1:
                boxes.append([x1, y1, x2, y2])
                labels.append(category_ids.index(a["category_id"]))
        if skip_empty and not labels:
            continue
        if info["file_name"] not in present:
            missing += 1
            continue
        out.append((str(image_id), np.array(boxes, np.float32).reshape(-1, 4), labels))
    return out, missing


@pytest.mark.parametrize("skip_empty", [True, False])
def test_coco_table_equals_pycocotools(tmp_path, skip_empty):
    rng = np.random.default_rng(0)
    images = [{"id": int(i), "file_name": f"{i}.jpg", "width": 100, "height": 80} for i in rng.permutation(40) + 7]
    categories = [{"id": 0, "name": "placeholder"}, {"id": 3, "name": "cat"}, {"id": 9, "name": "dog"},
                  {"id": 4, "name": "bird"}]
    annotations = []
    for k in range(150):
        x, y = rng.uniform(-20, 95, 2)
        w, h = rng.uniform(0, 40, 2) * (rng.random() > 0.05)  # a few zero-area boxes
        annotations.append({"id": k, "image_id": int(rng.choice([im["id"] for im in images[:30]])),
                            "category_id": int(rng.choice([3, 9, 4])), "bbox": [float(x), float(y), float(w), float(h)],
                            "area": float(w * h), "iscrowd": int(rng.random() < 0.1)})
    write_coco(tmp_path, "train", images, categories, annotations, missing={"12.jpg"})
    source = COCOSource(str(tmp_path), ["train"], class_names=["dog", "cat"], skip_empty=skip_empty)
    reference, missing = coco_reference(str(tmp_path / "annotations" / "instances_train.json"), [9, 3], skip_empty,
                               {im["file_name"] for im in images} - {"12.jpg"})
    assert len(source) == len(reference)
    for index, (image_id, boxes, labels) in enumerate(reference):
        got_boxes, got_labels, difficult = source.annotation(index)
        assert source.image_id(index) == image_id and source.coco_id(index) == int(image_id)
        assert source.image_path(index).endswith(f"train/{image_id}.jpg")
        np.testing.assert_allclose(got_boxes, boxes, rtol=0, atol=1e-4)
        assert got_labels.tolist() == labels and not difficult.any()
    assert source.problems.counts["listed images not found, skipped"] == missing
    if not skip_empty:  # evaluation keeps every listed image, so the missing one is counted
        assert missing == 1


def voc_reference(folder, ids, class_names):
    out = []
    for image_id in ids:
        root = ET.parse(folder / "Annotations" / f"{image_id}.xml").getroot()
        boxes, labels, difficult = [], [], []
        for obj in root.iter("object"):
            name = obj.findtext("name")
            if name not in class_names:
                continue
            b = obj.find("bndbox")
            x1, y1, x2, y2 = (float(b.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append([x1 - 1, y1 - 1, x2, y2])
            labels.append(class_names.index(name))
            difficult.append(obj.findtext("difficult") == "1")
        out.append((image_id, boxes, labels, difficult))
    return out


def test_voc_table_equals_an_independent_reading(tmp_path):
    rng = np.random.default_rng(1)
    images = {}
    for i in range(25):
        objects = [(str(rng.choice(["cat", "dog", "cow"])), int(x), int(y), int(x) + 9, int(y) + 7,
                    int(rng.random() < 0.2)) for x, y in rng.integers(1, 40, (int(rng.integers(0, 5)), 2))]
        images[f"{i:04d}"] = (objects, 60, 50)
    make_voc_folder(tmp_path, images, sets={"trainval": list(images)})
    source = VOCSource(str(tmp_path), ["trainval"], ["dog", "cat"])
    reference = voc_reference(tmp_path, list(images), ["dog", "cat"])
    assert len(source) == len(reference)
    for index, (image_id, boxes, labels, difficult) in enumerate(reference):
        got_boxes, got_labels, got_difficult = source.annotation(index)
        assert source.image_id(index) == image_id
        assert got_boxes.tolist() == boxes and got_labels.tolist() == labels
        assert got_difficult.tolist() == difficult


def test_shapes_items_are_the_generators():
    source = ShapesDataset("test", 5)
    for index in range(5):
        image, boxes, labels = generate(0, "test", index)
        got_image, got_boxes, got_labels, difficult = source.load(index)
        assert np.array_equal(got_image, image) and np.array_equal(got_boxes, boxes)
        assert np.array_equal(got_labels, labels) and not difficult.any()


def test_scale_benchmark_runs_small_and_prints_its_headlines():
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "benchmarks.bench_scale", "--coco-images", "400",
                             "--voc-images", "40", "--workers", "2"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| COCO epoch, 2 workers" in result.stdout
    assert "worker growth: " in result.stdout and "full COCO construction: " in result.stdout


def test_problems_are_summarised_with_the_full_list_in_the_run_folder(tmp_path, capsys):
    import train
    images = {f"i{k}": ([("cat", 1, 1, 10, 10), ("zebra", 2, 2, 9, 9)], 30, 30) for k in range(6)}
    make_voc_folder(tmp_path / "data", images, sets={"trainval": list(images), "test": list(images)})
    run = tmp_path / "run"
    assert train.main(["--dataset", "VOC", "--dataset-root", str(tmp_path / "data"), "--class-names", "cat",
                       "--basenet", "none", "--batch-size", "2", "--workers", "0", "--max-iter", "1",
                       "--no-final-eval", "--eval-every", "0", "--no-tensorboard", "--checkpoint-every", "0",
                       "--no-batch-norm", "--output", str(run)]) == 0
    err = capsys.readouterr().err
    assert "VOC: 6 objects of class 'zebra' not in --class-names, dropped" in err
    assert "(+3 more: the run folder's dataset_problems.txt" in err
    listing = (run / "dataset_problems.txt").read_text()
    assert listing.count("'zebra' not in --class-names") == 6  # every file (no test set is read without evaluation)
