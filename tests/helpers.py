"""Small builders shared by the tests: VOC-style folders written to a temporary directory."""
import json

import cv2
import numpy as np

from data.voc import annotation_xml, write_voc_folder


def voc_xml(filename, width, height, objects, root_tag="annotation"):
    """objects: (name, xmin, ymin, xmax, ymax[, difficult]) in VOC 1-based pixels; `root_tag` to write a broken one."""
    text = annotation_xml(filename, width, height, objects)
    return text if root_tag == "annotation" else text.replace("annotation>", f"{root_tag}>")


def make_voc_folder(folder, images, sets=None):
    """images: {image_id: (objects, width, height)}; writes JPEGs whose objects are drawn from their boxes."""
    written = {}
    for image_id, (objects, width, height) in images.items():
        image = np.full((height, width, 3), 90, np.uint8)
        for k, obj in enumerate(objects):
            x1, y1, x2, y2 = (int(v) for v in obj[1:5])
            cv2.rectangle(image, (x1 - 1, y1 - 1), (x2 - 1, y2 - 1), (40 * k % 255, 200, 255 - 30 * k), -1)
        written[image_id] = (image, objects)
    write_voc_folder(str(folder), written, sets or {"trainval": list(images)})


def on_loss_call(monkeypatch, call: int, action):
    """Run `action()` at the `call`-th evaluation of MultiBoxLoss (a way into the middle of a training run)."""
    from layers import MultiBoxLoss
    original = MultiBoxLoss.forward
    calls = {"n": 0}

    def forward(self, predictions, targets):
        calls["n"] += 1
        if calls["n"] == call:
            action()
        return original(self, predictions, targets)

    monkeypatch.setattr(MultiBoxLoss, "forward", forward)


def lively_model(model, size: int, seed: int = 0):
    """An untrained SSD whose outputs are spread out like a trained one's: Kaiming convolutions, BatchNorm statistics
    from a few random images, the class and box heads scaled to outputs of unit spread. (Default initialisations give
    near-equal scores everywhere, and the order of equal scores is arbitrary; unscaled box offsets of spread ~40 put
    exp(40 x 0.2) into the decoding, which turns float rounding into box differences no trained model shows.)"""
    import torch
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.randint(0, 255, (4, 3, size, size), dtype=torch.uint8))
        model.eval()
        loc, conf = model(torch.randint(0, 255, (2, 3, size, size), dtype=torch.uint8))
        for heads, spread in ((model.loc, loc.std()), (model.conf, conf.std())):
            for head in heads:
                last = [m for m in head.modules() if isinstance(m, torch.nn.Conv2d)][-1]
                last.weight.div_(spread)
                last.bias.div_(spread)
    return model


def detection_rows(detections) -> list:
    """PaddedDetections, or a list of {boxes, scores, labels} per image -> per image [(score, label, box)]."""
    if isinstance(detections, list):
        return [[(float(s), int(c), box) for s, c, box in zip(d["scores"].cpu(), d["labels"].cpu(), d["boxes"].cpu())]
                for d in detections]
    return [[(float(s), int(c), box) for s, c, box in zip(detections.scores[b, :n], detections.labels[b, :n],
                                                          detections.boxes[b, :n])]
            for b, n in enumerate(detections.counts.tolist())]


def assert_same_detections(ours, theirs, box_atol=1e-4, score_atol=1e-4):
    """Two detectors' outputs for the same images (PaddedDetections or lists of dicts) are the same detections:
    equal counts; position by position the same label and box (to box_atol), except that detections whose scores
    differ by at most score_atol (float rounding) may come in either order, or trade places at the top-k cut."""
    ours, theirs = detection_rows(ours), detection_rows(theirs)
    assert [len(rows) for rows in ours] == [len(rows) for rows in theirs]
    for b, (rows, other) in enumerate(zip(ours, theirs)):
        used = set()
        for i, (score, label, box) in enumerate(rows):
            partner = other[i]
            if (i not in used and abs(partner[0] - score) <= score_atol and partner[1] == label
                    and (partner[2] - box).abs().max() <= box_atol):
                used.add(i)
                continue
            near = [j for j, (s, c, bx) in enumerate(other) if j not in used and c == label
                    and abs(s - score) <= score_atol and (bx - box).abs().max() <= box_atol]
            if near:
                used.add(near[0])
                continue
            assert abs(score - rows[-1][0]) <= score_atol, f"image {b}, detection {i}: {rows[i]} not in the other"


def _linked_image(source, index: int, folder) -> str:
    """A symbolic link to the source's image `index` in `folder`; -> its file name."""
    import os
    path = source.image_path(index)
    name = os.path.basename(path)
    os.makedirs(folder, exist_ok=True)
    os.symlink(os.path.abspath(path), os.path.join(folder, name))
    return name


def write_yolo_copy(splits: dict, root, names):
    """A YOLO-format copy (data.yaml, images/<split>/, labels/<split>/) of file-backed sources: {split: source}.
    Boxes are written as the sources hold them (continuous pixel corners), normalised to the image size."""
    import os
    lines = [f"names: [{', '.join(names)}]"]
    for split, source in splits.items():
        lines.append(f"{split}: images/{split}")
        for i in range(len(source)):
            name = _linked_image(source, i, os.path.join(root, "images", split))
            boxes, labels, _ = source.annotation(i)
            height, width = source.image_size(i)
            os.makedirs(os.path.join(root, "labels", split), exist_ok=True)
            with open(os.path.join(root, "labels", split, os.path.splitext(name)[0] + ".txt"), "w") as f:
                for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels.tolist()):
                    f.write(f"{label} {(x1 + x2) / 2 / width:.8f} {(y1 + y2) / 2 / height:.8f} "
                            f"{(x2 - x1) / width:.8f} {(y2 - y1) / height:.8f}\n")
    with open(os.path.join(root, "data.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")


def write_coco_copy(splits: dict, root, names, roboflow: bool = False):
    """A COCO-format copy of file-backed sources {split: source}: annotations/instances_<split>.json with the images
    in <split>/, or with `roboflow` <split>/_annotations.coco.json beside them."""
    import json
    import os
    for split, source in splits.items():
        images, annotations = [], []
        for i in range(len(source)):
            name = _linked_image(source, i, os.path.join(root, split))
            height, width = source.image_size(i)
            images.append({"id": i + 1, "file_name": name, "width": width, "height": height})
            boxes, labels, _ = source.annotation(i)
            for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels.tolist()):
                annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": label + 1,
                                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                    "iscrowd": 0})
        doc = {"images": images, "annotations": annotations,
               "categories": [{"id": k + 1, "name": n} for k, n in enumerate(names)]}
        path = os.path.join(root, split, "_annotations.coco.json") if roboflow else \
            os.path.join(root, "annotations", f"instances_{split}.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(doc, f)


FAST = ["--basenet", "none", "--batch-size", "2", "--workers", "0", "--no-batch-norm", "--eval-every", "0",
        "--no-tensorboard", "--checkpoint-every", "0", "--log-every", "1", "--warmup-iters", "0", "--max-iter", "1"]


SHAPES = ["--dataset", "shapes", "--shapes-train-images", "4", "--shapes-test-images", "2", "--batch-size", "2",
          "--workers", "0", "--eval-every", "0", "--no-tensorboard", "--checkpoint-every", "0", "--max-iter", "1",
          "--warmup-iters", "0", "--eval-limit", "1"]


def cells_folder(folder, count=6, sets=None):
    images = {f"c{i}": ([("cell", 3 + i, 4, 30 + i, 28), ("dot", 35, 20, 50, 40)], 64, 48) for i in range(count)}
    make_voc_folder(folder, images, sets=sets or {"train": list(images)[:2], "test": list(images)[2:]})
    return folder


def raccoon_folder(folder, name="raccoon", count=4):
    images = {f"img{i}": ([(name, 3, 4, 30, 28), ("background_thing", 30, 30, 50, 50)], 64, 48)
              for i in range(count)}
    make_voc_folder(folder, images, sets={"train": list(images)[:2], "test": list(images)[2:]})
    return folder


def write_coco(root, name, images, categories, annotations):
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / name).mkdir(exist_ok=True)
    for image in images:
        cv2.imwrite(str(root / name / image["file_name"]), np.full((image["height"], image["width"], 3), 99, np.uint8))
    doc = {"images": images, "categories": categories, "annotations": annotations}
    (root / "annotations" / f"instances_{name}.json").write_text(json.dumps(doc))


def one_line_error(capsys, code, expected, status=2):
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == status, err
    assert len(errors) == 1 and expected in errors[0], err
    assert "Traceback" not in err and "weights_only=False" not in err and "usage:" not in err
    return errors[0]
