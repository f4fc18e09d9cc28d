"""PASCAL VOC 2007/2012 and VOC-style folders with your own classes.

The layouts of `root` (`voc_layout` finds which; scripts.check_data and the log say it):
- a VOCdevkit folder holding VOC2007/, VOC2012/ ...; sets are named "2007:trainval", "2012:trainval", "2007:test";
- one VOC-style folder holding Annotations/, JPEGImages/, ImageSets/Main/<set>.txt; sets are named "trainval", ...;
- split folders as Roboflow's "Pascal VOC" export writes them: train/, valid/ (or val/), test/, each holding its
  images and XMLs side by side (or images/ + annotations/); sets are the folder names ("trainval": train and
  valid when a test/ folder exists);
- one folder of images and XMLs as LabelImg writes them: XMLs beside the images, or images/ + annotations/ (any
  case; Annotations/ + JPEGImages/ without ImageSets too). Without lists or split folders it is split by a hash of
  each XML's name: about 1 image in 5 is "test", the rest "train" (the same split every time, for train.py and
  eval.py alike, and an added file does not move the others).

Coordinates: VOC files hold 1-based inclusive pixels. `parse_voc_xml` converts them once to continuous corners
(x1 - 1, y1 - 1, x2, y2), so that x2 - x1 equals the devkit's width x2 - x1 + 1; utils/voc_eval.py writes
results with the exact inverse. No other place adds or subtracts a pixel.
"""
import os
import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from typing import NamedTuple
from xml.sax.saxutils import escape

import cv2
import numpy as np

from .images import image_header_size
from .problems import DatasetError, Problems, clean_boxes, format_hint, log
from .records import RecordSource, TableBuilder, exists

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".JPG", ".JPEG", ".PNG")


class VocAnnotation(NamedTuple):
    boxes: np.ndarray  # [n, 4] float32, continuous pixel corners
    labels: np.ndarray  # [n] int64
    difficult: np.ndarray  # [n] bool
    width: int  # the file's <size>, 0 when missing
    height: int
    filename: str
    names: Counter  # every object <name> in the file, known or not


def parse_voc_xml(path: str, class_to_index: dict, problems: Problems) -> VocAnnotation:
    """One VOC XML file -> VocAnnotation, or None when the file is unusable (`problems` says why). Objects of
    classes not in `class_to_index` are dropped and counted per name."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        problems.add("malformed XML files, images skipped", f"{path}: malformed XML ({exc}), image skipped")
        return None
    if root.tag != "annotation":
        problems.add("XML files that are not VOC annotations, images skipped",
                     f"{path}: not a VOC annotation (root <{root.tag}>), image skipped")
        return None
    size = root.find("size")
    try:
        width = int(float(size.findtext("width"))) if size is not None else 0
        height = int(float(size.findtext("height"))) if size is not None else 0
    except (TypeError, ValueError):
        width = height = 0
    boxes, labels, difficult, unknown, names = [], [], [], Counter(), Counter()
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        names[name] += 1
        if name not in class_to_index:
            unknown[name] += 1
            continue
        bndbox = obj.find("bndbox")
        try:
            x1, y1, x2, y2 = (float(bndbox.findtext(tag)) for tag in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            problems.add("objects with a missing or non-numeric <bndbox>, dropped",
                         f"{path}: object '{name}' has a missing or non-numeric <bndbox>, dropped")
            continue
        if x2 <= x1 or y2 <= y1:  # judged on the file's own corners: xmax == xmin is a degenerate annotation
            problems.add("zero-area or inverted boxes, dropped", f"{path}: object '{name}' has a zero-area or "
                         f"inverted box ({x1:g}, {y1:g}, {x2:g}, {y2:g}), dropped")
            continue
        boxes.append((x1 - 1, y1 - 1, x2, y2))
        labels.append(class_to_index[name])
        difficult.append((obj.findtext("difficult") or "0").strip() == "1")
    for name, count in unknown.items():
        problems.add(f"objects of class '{name}' not in --class-names, dropped",
                     f"{path}: {count} object(s) of class '{name}' not in --class-names, dropped", count)
    boxes = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    keep = clean_boxes(boxes, width, height, path, problems)
    filename = (root.findtext("filename") or "").strip()
    return VocAnnotation(boxes[keep], np.array(labels, dtype=np.int64)[keep], np.array(difficult, dtype=bool)[keep],
                         width, height, filename, names)


def annotation_xml(filename: str, width: int, height: int, objects, path: str = "") -> str:
    """A VOC annotation file's text. objects: (name, xmin, ymin, xmax, ymax[, difficult]) in the file's own
    1-based pixels (`utils.voc_eval.to_devkit` turns continuous boxes into them); `path`: the image's, as LabelImg
    records it."""
    parts = [f"<annotation><filename>{escape(filename)}</filename>" + (f"<path>{escape(path)}</path>" if path else ""),
             f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"]
    for name, x1, y1, x2, y2, *rest in objects:
        parts.append(f"<object><name>{escape(name)}</name><difficult>{int(rest[0]) if rest else 0}</difficult>"
                     f"<bndbox><xmin>{x1:g}</xmin><ymin>{y1:g}</ymin><xmax>{x2:g}</xmax><ymax>{y2:g}</ymax>"
                     f"</bndbox></object>")
    return "".join(parts) + "</annotation>\n"


def write_voc_folder(folder: str, images: dict, sets: dict, quality: int = 95):
    """images: {image_id: (uint8 BGR image, objects as `annotation_xml` takes them)}; sets: {set name: [ids]}.
    Writes JPEGImages/<id>.jpg, Annotations/<id>.xml and ImageSets/Main/<set>.txt."""
    for sub in ("Annotations", "JPEGImages", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    for image_id, (image, objects) in images.items():
        cv2.imwrite(os.path.join(folder, "JPEGImages", f"{image_id}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        height, width = image.shape[:2]
        with open(os.path.join(folder, "Annotations", f"{image_id}.xml"), "w") as f:
            f.write(annotation_xml(f"{image_id}.jpg", width, height, objects))
    for name, ids in sets.items():
        with open(os.path.join(folder, "ImageSets", "Main", f"{name}.txt"), "w") as f:
            f.write("\n".join(ids) + "\n")


class ImageFolder:
    """The files of a JPEGImages folder, listed once (not up to 8 stat calls per image)."""

    def __init__(self, folder: str):
        self.folder = folder
        self.names = set(os.listdir(folder)) if os.path.isdir(folder) else set()

    def find(self, image_id: str, filename: str):
        """The devkit's rule: the image is <id> with a known image extension; the XML's <filename> is used only
        when no such file exists (exports whose XML and image names differ). -> (path or None, whether
        <filename> names another image of the folder than the one read)."""
        by_id = next((image_id + ext for ext in IMAGE_EXTENSIONS if image_id + ext in self.names), None)
        if by_id is None:
            found = filename if filename in self.names else None
            return (None if found is None else os.path.join(self.folder, found)), False
        other = bool(filename) and filename != by_id and filename in self.names
        return os.path.join(self.folder, by_id), other


# Folder names of the splits of an export (any case), and of the two halves of a folder pair (any case).
SPLIT_FOLDERS = ("train", "valid", "val", "test")
PAIR_FOLDERS = (("annotations", "images"), ("annotations", "jpegimages"), ("xmls", "images"))
TEST_SHARE = 5  # a folder without lists or splits: 1 image in TEST_SHARE (by a hash of its name) is "test"
LAYOUTS_TOLD = set()  # roots whose layout the log has named (once per process, for the training and test sets)


class VocLayout(NamedTuple):
    kind: str  # "devkit", "lists" (ImageSets/Main), "splits" (one folder per split) or "pairs" (one folder)
    folders: dict  # "splits": {split name: (xml folder, image folder)}; "pairs": {"all": (xml folder, image folder)}

    def describe(self, root: str) -> str:
        if self.kind == "devkit":
            return "a VOCdevkit (VOC2007/, VOC2012/ ...)"
        if self.kind == "lists":
            return "a VOC-style folder (Annotations/, JPEGImages/, ImageSets/Main lists)"
        if self.kind == "splits":
            xmls, images = next(iter(self.folders.values()))
            where = "images and XMLs side by side" if xmls == images else \
                f"{os.path.basename(images)}/ + {os.path.basename(xmls)}/"
            return f"split folders {', '.join(f'{n}/' for n in self.folders)} ({where})"
        xmls, images = self.folders["all"]
        where = "XMLs beside the images" if xmls == images else \
            f"{os.path.relpath(images, root)}/ + {os.path.relpath(xmls, root)}/"
        return f"one folder ({where}) without lists or splits: split by a hash of each name into train and test " \
               f"(1 in {TEST_SHARE}), the same split for train.py and eval.py"

    def entries(self, set_name: str) -> tuple:
        """-> (image ids, xml folder, image folder) of one split ("splits"), or of the hash split's "train"/"test"
        ("pairs")."""
        if self.kind == "splits":
            xmls, images = self.folders[set_name]
            return xml_ids(xmls), xmls, images
        xmls, images = self.folders["all"]
        ids = xml_ids(xmls)
        is_test = [zlib.crc32(i.encode()) % TEST_SHARE == 0 for i in ids]
        return [i for i, test in zip(ids, is_test) if test == (set_name == "test")], xmls, images


def xml_ids(folder: str) -> list:
    return sorted(name[:-4] for name in os.listdir(folder) if name.lower().endswith(".xml"))


def folder_pair(folder: str):
    """(xml folder, image folder) of a folder holding VOC XMLs beside its images, or images/ + annotations/
    (any case); None when it holds neither."""
    subfolders = {name.lower(): os.path.join(folder, name) for name in os.listdir(folder)
                  if os.path.isdir(os.path.join(folder, name))}
    for xmls, images in PAIR_FOLDERS:
        if xmls in subfolders and images in subfolders and xml_ids(subfolders[xmls]):
            return subfolders[xmls], subfolders[images]
    return (folder, folder) if xml_ids(folder) else None


def voc_layout(root: str):
    """Which VOC layout `root` holds (see the module's docstring), or None."""
    if is_devkit(root):
        return VocLayout("devkit", {})
    if os.path.isdir(os.path.join(root, "ImageSets", "Main")):
        return VocLayout("lists", {})
    splits = {}
    for name in sorted(os.listdir(root), key=lambda n: (SPLIT_FOLDERS.index(n.lower())
                                                        if n.lower() in SPLIT_FOLDERS else 9, n)):
        path = os.path.join(root, name)
        if name.lower() in SPLIT_FOLDERS and os.path.isdir(path) and folder_pair(path):
            splits[name] = folder_pair(path)
    if splits:
        return VocLayout("splits", splits)
    pair = folder_pair(root)
    return VocLayout("pairs", {"all": pair}) if pair else None


def layout_sets(root: str, layout: VocLayout, image_sets, flag: str) -> list:
    """VOC's set names ('2007:trainval', 'test', ...) for split folders or a hash-split folder -> their sets:
    'trainval' is train (and valid/val when a test split exists), 'test' is test (valid/val when there is none)."""
    available = list(layout.folders) if layout.kind == "splits" else ["train", "test"]
    by_lower = {name.lower(): name for name in available}
    val = by_lower.get("valid") or by_lower.get("val")
    aliases = {"trainval": [by_lower.get("train")] + ([val] if val and "test" in by_lower else []),
               "test": [by_lower.get("test") or val]}
    out = []
    for image_set in image_sets:
        name = image_set.split(":", 1)[1] if ":" in image_set else image_set
        chosen = [by_lower[name.lower()]] if name.lower() in by_lower else aliases.get(name.lower(), [None])
        if None in chosen or not chosen:
            raise DatasetError(f"{root}: no set '{name}' in this {layout.describe(root)}; pass {flag} with one of: "
                               f"{' '.join(available)}")
        out += [c for c in chosen if c not in out]
    return out


def no_layout_error(root: str) -> DatasetError:
    """What a folder that fits no VOC layout holds, in one line."""
    names = sorted(os.listdir(root))
    folders = [n + "/" for n in names if os.path.isdir(os.path.join(root, n))]
    files = Counter(os.path.splitext(n)[1].lower() or n for n in names if not os.path.isdir(os.path.join(root, n)))
    found = ", ".join(folders[:6] + [f"{k} {e} file(s)" for e, k in files.most_common(4)]) or "nothing"
    return DatasetError(f"{root}: no VOC layout (Annotations/ + JPEGImages/ [+ ImageSets/Main], XMLs beside their "
                        f"images, images/ + annotations/, or train/ valid/ test/ folders of those); it holds: "
                        f"{found}{format_hint(root, 'VOC')}")


def is_devkit(root: str) -> bool:
    """A VOCdevkit root (VOC2007/, VOC2012/ ...) rather than one VOC-style folder."""
    return not os.path.isdir(os.path.join(root, "ImageSets")) and any(
        name.startswith("VOC") and os.path.isdir(os.path.join(root, name)) for name in os.listdir(root))


def resolve_set(root: str, image_set: str):
    """'2007:trainval' under a VOCdevkit, or 'trainval' in a single VOC-style folder -> (folder, set name)."""
    if ":" in image_set:
        year, name = image_set.split(":", 1)
        folder = os.path.join(root, f"VOC{year}")
        if not os.path.isdir(folder):
            raise DatasetError(f"{folder}: not found (image set '{image_set}' needs a VOCdevkit root holding "
                               f"VOC{year}/; for a single VOC-style folder name the set without a year)")
        return folder, name
    return root, image_set


def listed_sets(main: str) -> list:
    """The image set names of an ImageSets/Main folder (its .txt files), sorted; [] when it does not exist."""
    return sorted(f[:-4] for f in os.listdir(main) if f.endswith(".txt")) if os.path.isdir(main) else []


def single_folder_sets(root: str, image_sets, flag: str) -> list:
    """VOC's default sets ('2007:test', ...) named for a single VOC-style folder -> the folder's own set of that
    name ('test'), or a DatasetError saying which sets the folder has."""
    available = listed_sets(os.path.join(root, "ImageSets", "Main"))
    out = []
    for image_set in image_sets:
        name = image_set.split(":", 1)[1] if ":" in image_set else image_set
        if name not in available:
            raise DatasetError(f"{root}: no image set '{name}' (ImageSets/Main/{name}.txt); pass {flag} with one "
                               f"of: {' '.join(available) or '(none found)'}{format_hint(root, 'VOC')}")
        if name not in out:
            out.append(name)
    return out


class VOCSource(RecordSource):
    """Parses and validates every annotation of the given image sets at construction (several sets concatenate).

    `table` (a RecordTable) holds image paths, boxes (continuous pixel corners), labels and difficult flags;
    problems found are summarised in one line per kind and kept per file in `problems`; unusable images are
    skipped.
    `names_found` counts every object name in the annotations read, known or not.
    """

    def __init__(self, root: str, image_sets, class_names, name: str = "VOC", skip_empty: bool = False,
                 layout: VocLayout = None):
        """`skip_empty` (training): images without any object of `class_names` are left out, with a count.
        `layout`: voc_layout(root) (found here when not given)."""
        self.root = os.path.expanduser(root)
        self.class_names = list(class_names)
        self.name = name
        if not os.path.isdir(self.root):
            raise DatasetError(f"{self.root}: dataset root not found (see docs/data.md)")
        self.layout = layout or voc_layout(self.root)
        if self.layout is None:
            raise no_layout_error(self.root)
        if self.layout.kind in ("splits", "pairs") and self.root not in LAYOUTS_TOLD:
            LAYOUTS_TOLD.add(self.root)
            log.info("layout: %s: %s", self.root, self.layout.describe(self.root))
        self.problems, self.names_found = Problems(), Counter()
        builder, seen, listings = TableBuilder(), set(), {}  # listings: image folder -> its ImageFolder, read once
        class_to_index = {c: i for i, c in enumerate(self.class_names)}
        for image_set in ([image_sets] if isinstance(image_sets, str) else image_sets):
            list_file, ids, xml_folder, image_folder = self._set_entries(image_set)
            for image_id in ids:
                if (xml_folder, image_id) in seen:
                    self.problems.add("ids listed more than once, read once",
                                      f"{list_file}: lists '{image_id}' again, read once")
                    continue
                seen.add((xml_folder, image_id))
                if image_folder not in listings:
                    listings[image_folder] = ImageFolder(image_folder)
                record = self._read_image(image_id, list_file, xml_folder, listings[image_folder], class_to_index,
                                          skip_empty)
                if record is not None:
                    builder.add(image_id, *record)
        self.table = builder.build()
        self.problems.report(name)
        if not len(self.table) and skip_empty and self.names_found.total():
            names = ", ".join(f"{n} ({c})" for n, c in self.names_found.most_common())
            raise DatasetError(f"{name}: the training set holds no object of --class-names "
                               f"{' '.join(class_names)}; its annotations name: {names}")
        if not len(self.table):
            raise DatasetError(f"{self.root}: image set(s) {list(image_sets)} hold no usable image"
                               + (f" ({self.problems.dominant()})" if self.problems else ""))
        log.info("%s %s: %d images, %d objects", name, list(image_sets), len(self.table), len(self.table.labels))

    def _read_image(self, image_id: str, list_file: str, xml_folder: str, images: ImageFolder, class_to_index: dict,
                    skip_empty: bool):
        """One listed id -> (image path, boxes, labels, difficult, height, width), or None (skipped, counted)."""
        xml_path = os.path.join(xml_folder, f"{image_id}.xml")
        if not exists(xml_path):
            self.problems.add("listed ids without an annotation file, skipped",
                              f"{list_file}: lists '{image_id}' but {xml_path} does not exist, skipped")
            return None
        parsed = parse_voc_xml(xml_path, class_to_index, self.problems)
        if parsed is None:
            return None
        image_path, other = images.find(image_id, parsed.filename)
        if image_path is None:
            self.problems.add("annotated images not found, skipped", f"{xml_path}: no image "
                              f"{image_id}.jpg/.png in {images.folder}, skipped")
            return None
        if other:
            self.problems.add("XMLs whose <filename> names another image, read as JPEGImages/<id>",
                              f"{xml_path}: <filename> {parsed.filename} is another image of the folder; "
                              f"read {os.path.basename(image_path)} (the devkit's rule: the image is "
                              f"named after the XML)")
        boxes, labels, difficult, width, height = parsed[:5]
        if width <= 0 or height <= 0:  # no <size>: the real one, so train, eval and check clip alike
            self.problems.note("XMLs without <size> (or 0): size read from the image")
            height, width = image_header_size(image_path)
            keep = clean_boxes(boxes, width, height, xml_path, self.problems)
            boxes, labels, difficult = boxes[keep], labels[keep], difficult[keep]
        self.names_found.update(parsed.names)
        if skip_empty and len(labels) == 0:
            self.problems.note("images without any object of --class-names, skipped for training")
            return None
        return image_path, boxes, labels, difficult, height, width

    def _set_entries(self, image_set: str) -> tuple:
        """-> (where the ids come from, image ids, xml folder, image folder) of one set of the layout."""
        if self.layout.kind in ("splits", "pairs"):
            ids, xmls, images = self.layout.entries(image_set)
            return xmls, ids, xmls, images
        folder, set_name = resolve_set(self.root, image_set)
        list_file = os.path.join(folder, "ImageSets", "Main", f"{set_name}.txt")
        if not exists(list_file):
            names = listed_sets(os.path.dirname(list_file))
            names = [n for n in names if "_" not in n] or names  # VOC's per-class lists aside
            prefix = image_set.split(":", 1)[0] + ":" if ":" in image_set else ""
            raise DatasetError(f"{list_file}: image set '{image_set}' not found; the sets there: "
                               + (" ".join(prefix + n for n in names) or "(none)"))
        with open(list_file, encoding="utf-8-sig", errors="replace") as f:  # a BOM (Notepad) is not an id
            ids = [line.split()[0] for line in f if line.strip()]
        return list_file, ids, os.path.join(folder, "Annotations"), os.path.join(folder, "JPEGImages")
