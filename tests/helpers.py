"""Small builders shared by the tests: VOC-style folders written to a temporary directory."""
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
