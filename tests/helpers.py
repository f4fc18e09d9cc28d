"""Small builders shared by the tests: VOC-style folders written to a temporary directory."""
import os

import cv2
import numpy as np


def voc_xml(filename, width, height, objects, root_tag="annotation"):
    """objects: (name, xmin, ymin, xmax, ymax[, difficult]) in VOC 1-based pixels."""
    parts = [f"<{root_tag}><filename>{filename}</filename>",
             f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"]
    for obj in objects:
        name, x1, y1, x2, y2 = obj[:5]
        difficult = obj[5] if len(obj) > 5 else 0
        parts.append(f"<object><name>{name}</name><truncated>1</truncated><difficult>{difficult}</difficult>"
                     f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>"
                     f"</object>")
    parts.append(f"</{root_tag}>")
    return "".join(parts)


def make_voc_folder(folder, images, sets=None):
    """images: {image_id: (objects, width, height)}; writes JPEGs whose objects are drawn from their boxes."""
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    for image_id, (objects, width, height) in images.items():
        image = np.full((height, width, 3), 90, np.uint8)
        for k, obj in enumerate(objects):
            x1, y1, x2, y2 = (int(v) for v in obj[1:5])
            cv2.rectangle(image, (x1 - 1, y1 - 1), (x2 - 1, y2 - 1), (40 * k % 255, 200, 255 - 30 * k), -1)
        cv2.imwrite(os.path.join(folder, "JPEGImages", f"{image_id}.jpg"), image)
        with open(os.path.join(folder, "Annotations", f"{image_id}.xml"), "w") as f:
            f.write(voc_xml(f"{image_id}.jpg", width, height, objects))
    for name, ids in (sets or {"trainval": list(images)}).items():
        with open(os.path.join(folder, "ImageSets", "Main", f"{name}.txt"), "w") as f:
            f.write("\n".join(ids) + "\n")
